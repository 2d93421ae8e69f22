"""The sizes of a run (--full, --small, --smoke): how much data, how long each run lasts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    accounts: int
    tokens: int
    known: int         # tokens whose secrets read, introspect and read-cold draw from (uniformly)
    mix_tokens: int    # tokens whose secrets read-mix draws from (Zipf); Active ones only
    duration: int      # seconds per measured run (wrk takes whole seconds)
    warmup: int        # seconds of warm-up per scenario, before its first measured run
    # Scenarios read and introspect measure the common path, a credential (and token) each
    # worker has seen: they warm up in rounds of this many seconds until the rate stops
    # rising (load.warm_up).
    read_warmup: int = 0
    # read-mix: consecutive wrk runs from a fresh server, no warm-up. The first is "the first
    # 10 s", the last "after 60 s" (the warm rate); the ones between keep the load on.
    mix_windows: tuple[int, ...] = (10, 50, 10)
    settle: bool = True  # wait for the previous scenario's writes before the next one
    webhook_records: int = 2_000  # records made and delivered by step webhooks


MODES = {
    "full": Mode("full", accounts=10_000, tokens=1_000_000, known=10_000, mix_tokens=100_000,
                 duration=10, warmup=3, read_warmup=15, webhook_records=5_000),
    "small": Mode("small", accounts=1_000, tokens=100_000, known=10_000, mix_tokens=100_000,
                  duration=5, warmup=2, read_warmup=15),
    "smoke": Mode("smoke", accounts=10, tokens=1_000, known=200, mix_tokens=500, duration=1,
                  warmup=1, read_warmup=1, mix_windows=(1, 1, 1), settle=False,
                  webhook_records=20),
}
