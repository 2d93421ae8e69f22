"""The results of a run: ratios to the baseline, the issue's targets, the printed table and
the JSON file."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.load import Run

# The targets (issue 10; introspect's: issue 12), read at the first connection count (16).
TARGET_READ_RATIO = 0.6
TARGET_READ_P99_MS = 10.0
TARGET_INTROSPECT_RATIO = 0.6
TARGET_INTROSPECT_P99_MS = 10.0
TARGET_COLD_RATIO = 0.25
TARGET_COLD_P99_MS = 25.0
TARGET_MIX_FIRST_SHARE = 0.5   # read-mix: the first window's rate over the warm window's
TARGET_LIST_P99_MS = 25.0
TARGET_CREATE_RPS = 500.0
TARGET_SQLITE_CREATE_P99_MS = 100.0
TARGET_RSS_MB = 250.0
TARGET_TRANSFER_S = 60.0       # import and export of 1,000,000 tokens on PostgreSQL
TARGET_TRANSFER_RSS_MB = 300.0
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def cache_summary(stats: dict[str, int]) -> dict[str, Any]:
    """Hit ratios from the counters the workers logged (None when none were logged)."""
    summary: dict[str, Any] = {"processes": stats["processes"]}
    for name, prefix in (("credentials", "credential"), ("token_views", "view")):
        hits, misses = stats[f"{prefix}_hits"], stats[f"{prefix}_misses"]
        summary[name] = {"hits": hits, "misses": misses,
                         "hit_ratio": _ratio(hits, hits + misses)
                         if stats["processes"] else None}
    return summary


def score(report: dict[str, Any]) -> None:
    """Ratios to the baseline at the same connection count, and the targets."""
    runs: list[Run] = report["runs"]
    baseline = {r.connections: r for r in runs if r.scenario == "healthz"}
    for run in runs:
        base = baseline.get(run.connections)
        if base is None or run.scenario == "healthz":
            run.ratios = {"throughput": 1.0 if base is run else None,
                          "p50": 1.0 if base is run else None,
                          "p99": 1.0 if base is run else None}
            continue
        run.ratios = {"throughput": _ratio(run.rps, base.rps),
                      "p50": round(run.latency_ms["p50"] / base.latency_ms["p50"], 2)
                      if base.latency_ms["p50"] else None,
                      "p99": round(run.latency_ms["p99"] / base.latency_ms["p99"], 2)
                      if base.latency_ms["p99"] else None}
    connections = report["parameters"]["connections"][0]
    at = {r.scenario: r for r in runs if r.connections == connections and not r.phase}
    postgres = report["database"] == "postgresql"
    indicative = not (report["mode"] == "full" and postgres)
    at_scale = "the target is for 1,000,000 tokens on PostgreSQL" if indicative else ""
    targets = []

    def target(name: str, wanted: str, measured: str, met: bool | None, note: str = "") -> None:
        targets.append({"target": name, "wanted": wanted, "measured": measured,
                        "met": met, "note": note})

    for name, least, p99 in (("read", TARGET_READ_RATIO, TARGET_READ_P99_MS),
                             ("introspect", TARGET_INTROSPECT_RATIO, TARGET_INTROSPECT_P99_MS),
                             ("read-cold", TARGET_COLD_RATIO, TARGET_COLD_P99_MS)):
        read = at.get(name)
        if read is None:
            continue
        ratio = read.ratios.get("throughput")
        target(f"{name}: throughput vs baseline", f">= {least}",
               f"{ratio}" if ratio is not None else "no baseline",
               None if ratio is None else ratio >= least)
        target(f"{name}: p99", f"< {p99:.0f} ms", f"{read.latency_ms['p99']} ms",
               read.latency_ms["p99"] < p99,
               "the target is for PostgreSQL" if name == "read-cold" and not postgres else "")
    mix = report.get("read_mix")
    if mix:
        share = mix["first_vs_warm"]
        target("read-mix: first window vs warm", f">= {TARGET_MIX_FIRST_SHARE}",
               f"{share}" if share is not None else "no rate", None if share is None
               else share >= TARGET_MIX_FIRST_SHARE,
               f"{mix['first_rps']:,.0f} vs {mix['warm_rps']:,.0f} req/s")
    listing = at.get("list")
    if listing is not None:
        target("list: p99", f"< {TARGET_LIST_P99_MS:.0f} ms", f"{listing.latency_ms['p99']} ms",
               listing.latency_ms["p99"] < TARGET_LIST_P99_MS, at_scale)
    create = at.get("create")
    if create is not None:
        target("create: throughput", f">= {TARGET_CREATE_RPS:.0f}/s", f"{create.rps}/s",
               create.rps >= TARGET_CREATE_RPS)
        if not postgres:
            target("create: p99 on SQLite", f"< {TARGET_SQLITE_CREATE_P99_MS:.0f} ms",
                   f"{create.latency_ms['p99']} ms",
                   create.latency_ms["p99"] < TARGET_SQLITE_CREATE_P99_MS,
                   "" if report["workers"] == 1 else "the target is for one worker")
    peaks = [(worker["peak_rss_mb"], name) for name, server in report["servers"].items()
             for worker in server["memory"]["workers"]]
    if peaks:
        peak, where = max(peaks)
        target("peak RSS per worker", f"< {TARGET_RSS_MB:.0f} MB", f"{peak} MB",
               peak < TARGET_RSS_MB, f"server {where}")
    for step, figures in report.get("transfer", {}).items():
        target(f"{step}: time", f"< {TARGET_TRANSFER_S:.0f} s", f"{figures['seconds']} s",
               figures["seconds"] < TARGET_TRANSFER_S, at_scale)
        target(f"{step}: peak RSS", f"< {TARGET_TRANSFER_RSS_MB:.0f} MB",
               f"{figures['peak_rss_mb']} MB", figures["peak_rss_mb"] < TARGET_TRANSFER_RSS_MB,
               at_scale)
    report["targets"] = {"connections": connections, "indicative": indicative,
                         "results": targets}


def as_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its runs as plain dicts (what the JSON file and render() take)."""
    return report | {"runs": [asdict(r) for r in report["runs"]]}


def render(report: dict[str, Any]) -> str:
    data = report.get("data", {})
    lines = [
        f"tokenhouse benchmark: {report['mode']} on {report['database']}, {report['server']} "
        f"with {report['workers']} workers; {data.get('tokens', 0):,} tokens in "
        f"{data.get('accounts', 0):,} accounts; {report['parameters']['duration']} s runs; "
        f"{report['machine']['cpus']} CPUs (load {report['machine']['load_before'][0]:.1f}, "
        f"CPU probe {report['machine']['cpu_probe_ms_before']:.0f} ms)",
        "",
        f"{'scenario':<18} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'x rps':>6} {'x p50':>6} {'x p99':>6} {'non2xx':>6} {'sockerr':>7} "
        f"{'RSS MB/worker':>14} {'CPU ms/req app/db':>17}",
    ]

    def fmt(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    for run in report["runs"]:
        ratios = run["ratios"]
        rss = "/".join(f"{v:.0f}" for v in run["rss_mb"].values())
        cpu = run["cpu_ms_per_request"]
        cpu_text = f"{cpu.get('server', 0):.2f}/{cpu.get('postgres', 0):.2f}"
        label = f"{run['scenario']} {run['phase']}".strip()
        lines.append(
            f"{label:<18} {run['connections']:>5} {run['rps']:>9,.0f} "
            f"{run['latency_ms']['p50']:>8.2f} {run['latency_ms']['p99']:>8.2f} "
            f"{fmt(ratios.get('throughput'), '.2f'):>6} {fmt(ratios.get('p50'), '.1f'):>6} "
            f"{fmt(ratios.get('p99'), '.1f'):>6} {run['non_2xx']:>6} "
            f"{run['socket_errors']:>7} {rss:>14} {cpu_text:>17}"
            + ("  (profiled)" if run["profiled"] else ""))
    mix = report.get("read_mix")
    if mix:
        cache = mix["cache"]
        hits = (f"not logged by the server (its log level: {report['log_level']}; the "
                f"counters are logged at info)" if not cache["processes"] else
                f"credentials {fmt(cache['credentials']['hit_ratio'], '.3f')}, token views "
                f"{fmt(cache['token_views']['hit_ratio'], '.3f')} "
                f"({cache['processes']} processes)")
        lines += ["", f"read-mix ({mix['tokens']:,} tokens, Zipf s={mix['zipf_s']}, from a "
                      f"cold start): first window {mix['first_rps']:,.0f} req/s, warm "
                      f"{mix['warm_rps']:,.0f} req/s ({fmt(mix['first_vs_warm'], '.2f')}); "
                      f"cache hit ratio: {hits}"]
    transfer = report.get("transfer")
    if transfer:
        lines += ["", "transfer: " + "; ".join(
            f"{step} {figures['seconds']} s, peak RSS {figures['peak_rss_mb']:.0f} MB"
            for step, figures in transfer.items())]
    hooks = report.get("webhooks")
    if hooks:
        live, backlog = hooks["live"], hooks["backlog"]
        lag, cpu = live["lag_ms"], live["cpu_ms_per_record"]
        lines += ["", f"webhooks ({hooks['records']:,} records a phase, each delivered once and "
                      f"signed; {hooks['repeats']} repeats):",
                  f"  live: {live['deliveries_per_s']:,.0f} deliveries/s from the first "
                  f"create to the last delivery ({live['seconds']} s; creates "
                  f"{live['create_rps']:,.0f}/s, {live['producers']} at a time); lag p50 "
                  f"{lag['p50']:,.0f} ms, p99 {lag['p99']:,.0f} ms; app CPU ms/record "
                  f"{cpu['server']:.2f}",
                  f"  backlog: {fmt(backlog['deliveries_per_s'], ',.0f')} deliveries/s from "
                  f"the first delivery to the last ({backlog['seconds']} s; "
                  f"{backlog['delivered_while_held']} delivered while held)"]
    servers = report.get("servers", {})
    if servers:
        lines.append("")
        for name, server in servers.items():
            memory = server["memory"]
            workers = ", ".join(f"{w['peak_rss_mb']:.0f} MB" for w in memory["workers"])
            cache = server["cache"]
            hits = (f"; cache hit ratio credentials "
                    f"{fmt(cache['credentials']['hit_ratio'], '.3f')}, token views "
                    f"{fmt(cache['token_views']['hit_ratio'], '.3f')}"
                    if cache["processes"] else "")
            lines.append(f"server {name}: peak RSS (VmHWM) workers {workers}; supervisor "
                         f"{memory['supervisor']['peak_rss_mb']:.0f} MB; stopped with "
                         f"SIGTERM: exit code {server['stop']['exit_code']}{hits}")
    targets = report.get("targets")
    if targets:
        note = " (indicative: not the full PostgreSQL set)" if targets["indicative"] else ""
        lines += ["", f"targets at {targets['connections']} connections{note}:"]
        for t in targets["results"]:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            lines.append(f"  {t["target"]:<34} wanted {t['wanted']:<10} measured "
                         f"{t['measured']:<14} {verdict}" + (f"  ({t['note']})" if t["note"]
                                                               else ""))
    timings = report["timings_s"]
    lines += ["", "timings: " + ", ".join(f"{k} {v}s" for k, v in timings.items())]
    return "\n".join(lines)
