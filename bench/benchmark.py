"""One run of the benchmark from start to end: the data, the database, import and export,
then each server in turn (the warm scenarios' one, read-cold's, read-mix's) with its
scenarios, and the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.checks import Credentials, check, make_client_token
from bench.data import Dataset, first_line, generate
from bench.database import Database
from bench.environment import cpu_probe, git_state, machine, versions
from bench.load import LUA_DIR, Run, run_wrk, warm_up
from bench.meters import CpuMeter, MemorySampler, profile_start
from bench.options import mode_of, parse_args
from bench.processes import MB, Server, free_port, run_cli, server_command
from bench.report import RESULTS_DIR, as_json, cache_summary, render, score
from bench.scenarios import (
    BY_NAME,
    MAIN,
    MIX,
    SERVERS,
    WEBHOOKS,
    WEBHOOKS_DRAIN,
    WEBHOOKS_HOLD,
    ZIPF_S,
    Scenario,
    ServerSetup,
)
from bench.transfer import export_data, import_data, reimport_export
from bench.webhooks import (
    EVENT,
    PRODUCERS,
    Receiver,
    arrivals,
    backlog_figures,
    create_webhook,
    live_figures,
    produce,
    wait_for,
)

SETTLE_SECONDS = 11  # the server's lastAccessAt interval (10 s by default), and a second


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Served:
    """A running server and the meters watching it."""
    setup: ServerSetup
    server: Server
    sampler: MemorySampler
    meter: CpuMeter


class Benchmark:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.mode = mode_of(args)
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.output: Path = args.output or (
            RESULTS_DIR / f"{self.stamp}-{self.mode.name}-{args.database}-{args.server}.json")
        self.output.parent.mkdir(parents=True, exist_ok=True)  # profiles go there too
        self.report: dict[str, Any] = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": self.mode.name, "database": args.database, "server": args.server,
            "workers": args.workers, "log_level": args.log_level,
            "parameters": asdict(self.mode) | {"connections": args.connection_list,
                                               "wrk_threads": args.wrk_threads,
                                               "seed": args.seed,
                                               "scenarios": args.scenario_list
                                               + args.step_list},
            "machine": machine(),
            "versions": versions(args.wrk, args.granian if args.server == "granian" else None),
            "git": git_state(), "timings_s": {}, "runs": [], "warmup_rps": {}, "servers": {},
        }
        self.timings: dict[str, float] = self.report["timings_s"]
        self.workdir = Path(tempfile.mkdtemp(prefix="tokenhouse-bench-"))
        self.database = Database(args.database, self.workdir, args.pg_dsn)
        self.key = secrets.token_urlsafe(48)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENHOUSE_")}
        # No access log: a line per request would be measured with the request.
        self.env.update(TOKENHOUSE_SECRET_KEY=self.key, TOKENHOUSE_LOG_LEVEL=args.log_level,
                        TOKENHOUSE_ACCESS_LOG="false")
        self.wrk_env: dict[str, str] = {}
        self.data: Dataset | None = None
        self.credentials: Credentials | None = None

    # -- the steps ------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Every step; the database and the work directory go at the end, whatever happens
        (unless --keep)."""
        began = time.monotonic()
        try:
            self.prepare()
            chosen = [BY_NAME[name] for name in self.args.scenario_list]
            first = True
            for setup in SERVERS:
                scenarios = [s for s in chosen if s.server is setup]
                if not scenarios:
                    continue
                if not first and self.mode.settle:
                    # The previous server wrote its lastAccessAt values as it stopped.
                    log("VACUUM and CHECKPOINT before the next server")
                    self.database.settle()
                first = False
                self.serve(setup, scenarios)
            if "webhooks" in self.args.step_list:
                if not first and self.mode.settle:
                    log("VACUUM and CHECKPOINT before the next server")
                    self.database.settle()
                self.webhooks()
        finally:
            self.clean_up()
        self.timings["total"] = round(time.monotonic() - began, 1)
        self.report["machine"]["load_after"] = list(os.getloadavg())
        self.report["machine"]["cpu_probe_ms_after"] = cpu_probe()
        score(self.report)
        result = as_json(self.report)
        self.output.write_text(json.dumps(result, indent=2) + "\n")
        return result | {"output": str(self.output)}

    def prepare(self) -> None:
        """The data, a migrated database loaded with it (the import, timed), the export of
        that data (timed), and the admin token."""
        mode, args = self.mode, self.args
        self.database.create()
        self.env["TOKENHOUSE_DATABASE_URL"] = self.database.url
        log(f"mode {mode.name}: {mode.accounts:,} accounts, {mode.tokens:,} tokens on "
            f"{args.database} ({self.database.name or self.database.path}); work directory "
            f"{self.workdir}")

        step = time.monotonic()
        data = self.data = generate(self.workdir, mode, self.key.encode(), args.seed)
        self.timings["generate"] = round(time.monotonic() - step, 2)
        self.report["data"] = {k: v for k, v in asdict(data).items()
                               if not k.endswith("_file")}
        log(f"generated {data.bytes / MB:,.0f} MB of JSON Lines in {self.timings['generate']}s"
            f" ({data.token_modules:,} token-module links; statuses {data.statuses}; "
            f"{data.mix_tokens:,} read-mix secrets)")

        self.timings["migrate"] = run_cli(["migrate"], env=self.env, cwd=self.workdir,
                                          timeout=300).seconds
        transfer = self.report["transfer"] = {}
        transfer["import"] = import_data(data, env=self.env, cwd=self.workdir)
        self.timings["import"] = transfer["import"]["seconds"]
        log(f"imported in {transfer['import']['seconds']}s, peak RSS "
            f"{transfer['import']['peak_rss_mb']:.0f} MB")

        step = time.monotonic()
        self.database.analyze()
        self.timings["analyze"] = round(time.monotonic() - step, 2)
        self.report["database_info"] = {"version": self.database.version(),
                                        "size_bytes": self.database.size()}

        exported = self.workdir / "export.jsonl"
        try:
            transfer["export"] = export_data(data, exported, env=self.env, cwd=self.workdir)
            self.timings["export"] = transfer["export"]["seconds"]
            log(f"exported in {transfer['export']['seconds']}s, peak RSS "
                f"{transfer['export']['peak_rss_mb']:.0f} MB")
            second = Database(args.database, self.workdir / "reimport", args.pg_dsn)
            second.path.parent.mkdir()
            transfer["reimport"] = reimport_export(
                exported, second, tokens=self.database.token_count(), env=self.env,
                cwd=self.workdir)
            self.timings["reimport"] = transfer["reimport"]["seconds"]
            log(f"re-imported the export ({transfer['reimport']['bytes'] / MB:,.0f} MB) into "
                f"a fresh database in {transfer['reimport']['seconds']}s, peak RSS "
                f"{transfer['reimport']['peak_rss_mb']:.0f} MB")
        finally:
            exported.unlink(missing_ok=True)  # up to 2 GB at 1,000,000 tokens
            shutil.rmtree(self.workdir / "reimport", ignore_errors=True)  # SQLite's copy

        bootstrap = run_cli(["bootstrap", "--json"], env=self.env, cwd=self.workdir,
                            timeout=120)
        self.timings["bootstrap"] = bootstrap.seconds
        admin_secret = json.loads(bootstrap.stdout)["token"]["token"]
        self.credentials = Credentials(
            admin=admin_secret, client=None, known=first_line(data.secrets_file),
            mix=first_line(data.mix_secrets_file), account=first_line(data.accounts_file))
        self.wrk_env = dict(os.environ, BENCH_LUA_DIR=str(LUA_DIR),
                            BENCH_SECRETS=str(data.secrets_file),
                            BENCH_MIX_SECRETS=str(data.mix_secrets_file),
                            BENCH_ZIPF_S=str(ZIPF_S), BENCH_ACCOUNTS=str(data.accounts_file),
                            BENCH_ADMIN_SECRET=admin_secret, BENCH_TAG=f"bench {self.stamp}")

    def serve(self, setup: ServerSetup, scenarios: list[Scenario]) -> None:
        """A fresh server with the setup's settings, each of its scenarios in turn."""
        assert self.credentials is not None and self.data is not None
        with self.serving(setup) as served:
            base_url = served.server.base_url
            if any(s.name == "list" for s in scenarios):
                client = make_client_token(base_url, self.credentials.admin,
                                           self.data.showcase_account)
                self.credentials = dataclasses.replace(self.credentials, client=client)
                self.wrk_env["BENCH_CLIENT_SECRET"] = client
            # read-mix is checked after its windows: a request before would warm it.
            for scenario in scenarios:
                if scenario.warmup != "windows":
                    check(scenario, base_url, self.credentials)
            for number, scenario in enumerate(scenarios):
                if number > 0 and self.mode.settle:
                    # The workers write the previous scenario's lastAccessAt values within
                    # one interval (10 s); then the database is vacuumed and checkpointed.
                    log(f"settling for {SETTLE_SECONDS}s, then VACUUM and CHECKPOINT")
                    time.sleep(SETTLE_SECONDS)
                    self.database.settle()
                if scenario.warmup == "windows":
                    self.windows(served, scenario)
                    check(scenario, base_url, self.credentials)
                else:
                    self.warm_then_measure(served, scenario)
        if setup is MIX and "read_mix" in self.report:
            self.report["read_mix"]["cache"] = self.report["servers"][setup.name]["cache"]

    def webhooks(self) -> None:
        """Step webhooks (bench/webhooks.py): live, on a server of its own, with the CPU
        its processes spent (the creates, the fan-out and the deliveries); then a backlog
        made on a server that holds it, drained by another."""
        assert self.credentials is not None and self.data is not None
        accounts = self.data.accounts_file.read_text().split()
        admin, count = self.credentials.admin, self.mode.webhook_records
        with Receiver() as receiver:
            with self.serving(WEBHOOKS) as served:
                base_url = served.server.base_url
                webhook, secret = create_webhook(base_url, admin, receiver.url)
                log(f"webhooks: {count:,} token creates, {PRODUCERS} at a time, delivered "
                    f"to {receiver.url} as they are made")
                before = served.meter.snapshot()
                live = produce(base_url, admin, accounts, count)
                wait_for(receiver, count)
                # The server's processes only: the deliveries' writes go beyond the pools'
                # kept connections, and a PostgreSQL backend that came and went between the
                # two snapshots is not counted, so the database's figure would be too low.
                cpu = {"server": served.meter.delta(before, served.meter.snapshot())["server"]}
            with self.serving(WEBHOOKS_HOLD) as served:
                # Its one worker's first pass, at start, finds nothing to do; the next is
                # 60 s later.
                time.sleep(1)
                log(f"webhooks: {count:,} token creates held in the outbox")
                backlog = produce(served.server.base_url, admin, accounts, count)
            held = len(receiver.ids) - count
            draining = time.monotonic()
            with self.serving(WEBHOOKS_DRAIN):
                wait_for(receiver, 2 * count)
            time.sleep(0.5)  # repeats, if any, arrive now
            first_at, repeats = arrivals(receiver, secret, [live, backlog])
            received = len(receiver.deliveries)
        figures = live_figures(live, first_at)
        figures["cpu_s"] = cpu
        figures["cpu_ms_per_record"] = {k: round(v * 1000 / count, 3) for k, v in cpu.items()}
        drained = backlog_figures(backlog, first_at, held, draining)
        self.report["webhooks"] = {"webhook": webhook, "event": EVENT, "records": count,
                                   "live": figures, "backlog": drained, "received": received,
                                   "repeats": repeats, "signatures_valid": True}
        log(f"webhooks: live {figures['deliveries_per_s']:,.0f}/s (creates "
            f"{figures['create_rps']:,.0f}/s, lag p99 {figures['lag_ms']['p99']:,.0f} ms), "
            f"backlog {drained['deliveries_per_s'] or 0:,.0f}/s, repeats {repeats}")

    @contextmanager
    def serving(self, setup: ServerSetup) -> Iterator[Served]:
        """The server of `setup`, started, watched, then stopped with SIGTERM (its memory,
        exit code, log tail and cache counters go into the report)."""
        args = self.args
        port = free_port()
        step = time.monotonic()
        workers = setup.workers or args.workers
        server = Server(server_command(args.server, port, workers, granian=args.granian,
                                       log_level=args.log_level),
                        env=self.env | dict(setup.settings), cwd=self.workdir, port=port,
                        log_path=self.workdir / f"server-{setup.name}.log")
        sampler: MemorySampler | None = None
        try:
            server.wait_ready()
            started = round(time.monotonic() - step, 2)
            self.timings["server_start" if setup is MAIN else f"server_start_{setup.name}"] = (
                started)
            log(f"server {setup.name} ({setup.title}): {args.server} on {server.base_url} "
                f"with {workers} workers (started in {started}s)")
            sampler = MemorySampler(server.pid)
            sampler.start()
            meter = CpuMeter(sampler, self.database.name)
            sampler.window()
            yield Served(setup, server, sampler, meter)
            sampler.stop()
            memory = self.memory(sampler, server.pid)
            code = server.stop()
            record = {"title": setup.title, "settings": dict(setup.settings),
                      "start_s": started, "memory": memory,
                      "stop": {"exit_code": code, "clean": code == 0},
                      "log_tail": server.logs()[-3000:],
                      "cache": cache_summary(server.cache_stats())}
            self.report["servers"][setup.name] = record
            if setup is MAIN:  # where results of earlier versions kept them
                self.report.update(memory=memory, server_stop=record["stop"],
                                   server_log_tail=record["log_tail"])
        finally:
            if sampler is not None:
                sampler.stop()
            server.stop()

    def warm_then_measure(self, served: Served, scenario: Scenario) -> None:
        """The warm-up (rounds for read and introspect), then one measured run at each
        connection count."""
        mode, args = self.mode, self.args
        if scenario.warmup == "rounds":
            seconds, rounds = max(mode.warmup, mode.read_warmup), mode.read_warmup > 1
        else:
            seconds, rounds = mode.warmup, False
        connections = args.connection_list[0]
        if seconds > 0:
            def load(duration: int) -> dict[str, Any]:
                log(f"{scenario.name}: warm-up {duration}s at {connections} connections")
                return run_wrk(args.wrk, scenario, base_url=served.server.base_url,
                               connections=connections, threads=args.wrk_threads,
                               duration=duration, env=self.wrk_env)

            self.report["warmup_rps"][scenario.name] = warm_up(load, seconds, rounds=rounds,
                                                               log=log)
        for index, connections in enumerate(args.connection_list):
            self.measure(served, scenario, connections, mode.duration,
                         profile=scenario.name in args.profile_list and index == 0)

    def windows(self, served: Served, scenario: Scenario) -> None:
        """read-mix: consecutive measured windows from the server's start, no warm-up, at
        the first connection count; the first window's rate against the last's."""
        connections = self.args.connection_list[0]
        runs, elapsed = [], 0
        for index, seconds in enumerate(self.mode.mix_windows):
            runs.append(self.measure(
                served, scenario, connections, seconds, phase=f"{elapsed}-{elapsed + seconds}s",
                profile=scenario.name in self.args.profile_list and index == 0))
            elapsed += seconds
        assert self.data is not None
        first, warm = runs[0], runs[-1]
        self.report["read_mix"] = {
            "tokens": self.data.mix_tokens, "zipf_s": ZIPF_S,
            "draw": "in lua/read_mix.lua: rank by inverse CDF (binary search over cumulative "
                    "weights), token of rank k is line k of the shuffled secrets file",
            "windows_s": list(self.mode.mix_windows), "connections": connections,
            "first_rps": first.rps, "warm_rps": warm.rps,
            "first_vs_warm": round(first.rps / warm.rps, 3) if warm.rps else None,
            "cache": None}

    def measure(self, served: Served, scenario: Scenario, connections: int, duration: int, *,
                phase: str = "", profile: bool = False) -> Run:
        """One wrk run under the meters; appended to the report's runs."""
        sampler, meter = served.sampler, served.meter
        sampler.window()
        load = list(os.getloadavg())
        profiling = (profile_start(self.args.py_spy, sampler.workers(), scenario.name,
                                   duration, self.output.parent, self.stamp)
                     if profile else [])
        cpu_before = meter.snapshot()
        wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        raw = run_wrk(self.args.wrk, scenario, base_url=served.server.base_url,
                      connections=connections, threads=self.args.wrk_threads,
                      duration=duration, env=self.wrk_env)
        wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = meter.delta(cpu_before, meter.snapshot())
        cpu["wrk"] = round(wrk_after.ru_utime + wrk_after.ru_stime
                           - wrk_before.ru_utime - wrk_before.ru_stime, 3)
        for process in profiling:
            process.wait(60)
        window = {pid: rss for pid, rss in sampler.window().items()
                  if pid in sampler.workers()}
        seconds = raw["duration_us"] / 1e6
        requests = max(raw["requests"], 1)
        errors = raw["errors"]
        run = Run(scenario=scenario.name, connections=connections,
                  duration_s=round(seconds, 3), requests=raw["requests"],
                  rps=round(raw["requests"] / seconds, 1),
                  latency_ms={k: round(v / 1000, 3) for k, v in raw["latency_us"].items()},
                  errors=errors, non_2xx=errors["status"],
                  socket_errors=sum(v for k, v in errors.items() if k != "status"),
                  rss_mb={str(pid): round(rss / MB, 1) for pid, rss in window.items()},
                  load_before=[round(x, 2) for x in load], profiled=bool(profiling),
                  cpu_s=cpu, phase=phase,
                  cpu_ms_per_request={k: round(v * 1000 / requests, 3)
                                      for k, v in cpu.items()})
        self.report["runs"].append(run)
        log(f"{f'{scenario.name} {phase}'.strip()} c={connections}: {run.rps:,.0f} req/s, p50 "
            f"{run.latency_ms['p50']:.2f} ms, p99 {run.latency_ms['p99']:.2f} ms, "
            f"non-2xx {run.non_2xx}, socket errors {run.socket_errors}")
        return run

    @staticmethod
    def memory(sampler: MemorySampler, root: int) -> dict[str, Any]:
        return {
            "server_pid": root,
            "supervisor": {"pid": root, "peak_rss_mb": round(sampler.hwm.get(root, 0) / MB, 1)},
            "workers": [{"pid": pid, "peak_rss_mb": round(sampler.hwm.get(pid, 0) / MB, 1),
                         "sampled_peak_rss_mb": round(sampler.peak.get(pid, 0) / MB, 1),
                         "command": sampler.commands.get(pid, "")[:200]}
                        for pid in sampler.workers()],
            "method": "VmHWM of /proc/<pid>/status at the end of the runs (peak RSS since "
                      "the process started), and VmRSS sampled every 0.2 s",
        }

    def clean_up(self) -> None:
        if self.args.keep:
            if self.credentials is not None:
                # What it takes to serve the kept database again, and the secrets to call it.
                values = {"TOKENHOUSE_DATABASE_URL": self.database.url,
                          "TOKENHOUSE_SECRET_KEY": self.key,
                          "BENCH_ADMIN_SECRET": self.credentials.admin,
                          "BENCH_CLIENT_SECRET": self.credentials.client or ""}
                (self.workdir / "bench.env").write_text(
                    "".join(f"export {k}='{v}'\n" for k, v in values.items()))
            log(f"kept: work directory {self.workdir}, database "
                f"{self.database.name or self.database.path}")
            return
        try:
            self.database.drop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM to the benchmark cleans up like Ctrl-C (server stopped, database dropped)."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not shutil.which(args.wrk):
            raise BenchError(f"wrk is not installed ({args.wrk}): 'make bench-tools' or "
                             "'apt-get install wrk'")
        if args.profile_list and not shutil.which(args.py_spy):
            raise BenchError(f"--profile needs py-spy ({args.py_spy}); install it in a "
                             "throwaway virtualenv and pass --py-spy PATH")
        with _terminate_as_exit():
            report = Benchmark(args).run()
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130
    print(render(report))
    print(f"\nresults: {report['output']}")
    return 0
