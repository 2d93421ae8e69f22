"""Load benchmark of tokenhouse (`make bench`; see bench/README.md). One module per concern:

    run.py          the entry point (`python bench/run.py --help`)
    options.py      the command line
    modes.py        --full, --small, --smoke: how much data, how long each run lasts
    scenarios.py    what is measured: each scenario's request, server settings and warm-up
    data.py         the generated import file and the secrets the load generator uses
    database.py     a fresh PostgreSQL database or SQLite file, and its upkeep between runs
    processes.py    the `tokenhouse` CLI (timed, with each call's peak RSS) and the server
    transfer.py     `tokenhouse import` and `tokenhouse export` of the run's data, timed
    checks.py       the set-up requests, and one checked answer per scenario before any load
    load.py         wrk and its Lua scripts (lua/): one run, warm-ups
    meters.py       what is watched during a run: RSS, CPU per process, py-spy
    environment.py  machine, versions and commit, recorded with the results
    report.py       ratios to the baseline, the targets, the table and the JSON
    webhooks.py     step webhooks: a local receiver, records made, the delivery rates
    benchmark.py    one run from start to end: the order of the steps above
"""


class BenchError(RuntimeError):
    """A step failed; the message says which and why."""
