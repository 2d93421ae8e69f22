"""The command line of `bench/run.py` (and `make bench BENCH_ARGS=...`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

from bench.modes import MODES, Mode
from bench.scenarios import BY_NAME, SCENARIOS, STEPS

DEFAULT_PG = os.environ.get("TOKENHOUSE_BENCH_PG",
                            "postgresql://postgres@127.0.0.1:5432/postgres")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load benchmark of tokenhouse (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="10,000 accounts, 1,000,000 tokens, 10 s runs (PostgreSQL only)")
    size.add_argument("--small", dest="mode", action="store_const", const="small",
                      help="1,000 accounts, 100,000 tokens, 5 s runs")
    size.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                      help="tiny data, 1 s runs: checks that everything works (CI)")
    parser.set_defaults(mode="full")
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--pg-dsn", default=DEFAULT_PG,
                        help="PostgreSQL administration DSN (env TOKENHOUSE_BENCH_PG); a fresh "
                             "database is created there and dropped at the end")
    names = [*BY_NAME, *STEPS]
    parser.add_argument("--scenarios", default=",".join(names),
                        help="comma-separated subset of " + ",".join(names) + " (run in "
                             "this order whatever the order given)")
    parser.add_argument("--connections", default="16,64",
                        help="comma-separated connection counts; the first is the one the "
                             "targets are read at (and read-mix's only one)")
    parser.add_argument("--duration", type=int, help="seconds per run (default: by mode)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up per scenario, 0 for "
                                                   "none (default: by mode)")
    parser.add_argument("--webhook-records", type=int,
                        help="records made and delivered by step webhooks (default: by mode)")
    parser.add_argument("--accounts", type=int, help="override the mode's account count")
    parser.add_argument("--tokens", type=int, help="override the mode's token count")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk", help="wrk executable")
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn",
                        help="uvicorn: 'tokenhouse serve' as shipped; granian: 'granian "
                             "--interface asgi --factory tokenhouse.app:create_app' (for the "
                             "stack comparison; needs --granian)")
    parser.add_argument("--granian", help="granian executable of a virtualenv that also has "
                                          "tokenhouse installed")
    parser.add_argument("--log-level", default="info",
                        help="TOKENHOUSE_LOG_LEVEL of the server (the access log is off: "
                             "TOKENHOUSE_ACCESS_LOG=false; at 'info' each worker logs its "
                             "cache counters when it stops)")
    parser.add_argument("--profile", default="",
                        help="comma-separated scenarios to profile with py-spy (each worker, "
                             "during the first measured run); flame data next to the JSON")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy",
                        help="py-spy executable (not a project dependency)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data")
    parser.add_argument("--output", type=Path, help="where to write the JSON (default: "
                                                    "bench/results/<timestamp>-....json)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database and the work directory (printed) for a look")
    args = parser.parse_args(argv)
    chosen = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = sorted(chosen - set(names))
    if unknown or not chosen:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(names)}")
    args.scenario_list = [s.name for s in SCENARIOS if s.name in chosen]
    args.step_list = [step for step in STEPS if step in chosen]
    if args.webhook_records is not None and args.webhook_records < 1:
        parser.error("--webhook-records takes a positive integer")
    args.profile_list = [s.strip() for s in args.profile.split(",") if s.strip()]
    try:
        args.connection_list = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        parser.error("--connections takes integers, e.g. 16,64")
    if not args.connection_list or min(args.connection_list) < 1:
        parser.error("--connections takes positive integers, e.g. 16,64")
    if args.mode == "full" and args.database == "sqlite":
        parser.error("--full runs on PostgreSQL only (use --small or --smoke with SQLite)")
    if args.server == "granian" and not args.granian:
        args.granian = shutil.which("granian")
        if not args.granian:
            parser.error("--server granian needs --granian PATH (a granian in a virtualenv "
                         "that also has tokenhouse installed)")
    return args


def mode_of(args: argparse.Namespace) -> Mode:
    """The mode named on the command line, with its overrides."""
    base = MODES[args.mode]
    tokens = args.tokens or base.tokens
    return dataclasses.replace(
        base, accounts=args.accounts or base.accounts, tokens=tokens,
        known=min(base.known, tokens), mix_tokens=min(base.mix_tokens, tokens),
        duration=args.duration or base.duration,
        webhook_records=args.webhook_records or base.webhook_records,
        warmup=base.warmup if args.warmup is None else args.warmup,
        read_warmup=base.read_warmup if args.warmup is None else args.warmup)
