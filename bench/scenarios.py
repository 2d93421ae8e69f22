"""What is measured: each scenario's request (a wrk Lua script in lua/), the server that
serves it and how it warms up. Scenarios run in the order of SCENARIOS, grouped by server:
the warm ones share one server; read-cold and read-mix each get a server of their own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TOKENS_PATH = "/public/v1/accounts/api-tokens"
INTROSPECT_PATH = f"{TOKENS_PATH}/introspect"
LIST_QUERY = "eq(status,Active)&order=-audit.created.at&limit=10"
ACCESS_MANAGEMENT = "MOD-1732"
ZIPF_S = 1.1  # read-mix: the popularity of the token of rank k is proportional to k^-s


@dataclass(frozen=True)
class ServerSetup:
    """A server configuration: its name, and the settings it gets besides the run's own
    (database URL, secret key, log level)."""
    name: str
    title: str
    settings: tuple[tuple[str, str], ...] = ()
    workers: int | None = None  # None: the run's (--workers)


MAIN = ServerSetup("main", "default settings, shared by the warm scenarios")
COLD = ServerSetup("cold", "credential and token-view caches off",
                   (("TOKENHOUSE_CREDENTIAL_CACHE_SIZE", "0"),
                    ("TOKENHOUSE_TOKEN_VIEW_CACHE_SIZE", "0")))
MIX = ServerSetup("mix", "default settings, freshly started, measured without a warm-up")
# The webhook delivery rate (bench/webhooks.py): a local receiver is a loopback target, and
# the worker looks for work every 0.1 s when idle instead of every second. The backlog's
# records are made on a server whose worker waits 60 s (the most) between passes, and
# drained by a fresh server. The holding server has one worker: it answers only once its
# worker has started (with several, one may start late, in the middle of the creates, and
# deliver them).
_PRIVATE = ("TOKENHOUSE_WEBHOOK_ALLOW_PRIVATE", "true")
WEBHOOKS = ServerSetup("webhooks", "webhooks: private targets allowed, 0.1 s poll",
                       (_PRIVATE, ("TOKENHOUSE_WEBHOOK_POLL_SECONDS", "0.1")))
WEBHOOKS_HOLD = ServerSetup("webhooks-hold", "webhooks: records made, held (60 s poll)",
                            (_PRIVATE, ("TOKENHOUSE_WEBHOOK_POLL_SECONDS", "60")), workers=1)
WEBHOOKS_DRAIN = ServerSetup("webhooks-drain", "webhooks: the held records drained (0.1 s "
                             "poll)", WEBHOOKS.settings)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    script: str
    path: str
    expect: int        # the status every request should get
    server: ServerSetup = MAIN
    # rounds: warm-up rounds until the rate stops rising; plain: one warm-up of the mode's
    # length; windows: none, consecutive measured windows from the server's start (read-mix)
    warmup: Literal["rounds", "plain", "windows"] = "plain"


SCENARIOS = [
    Scenario("healthz", "GET /healthz (baseline, no I/O)", "healthz.lua", "/healthz", 200),
    Scenario("read", "GET api-tokens/{id}, random token reads itself", "read_self.lua",
             TOKENS_PATH, 200, warmup="rounds"),
    Scenario("introspect", "POST api-tokens/introspect, admin checks a random known token",
             "introspect.lua", INTROSPECT_PATH, 200, warmup="rounds"),
    Scenario("list", "GET api-tokens?eq(status,Active)&order=-created&limit=10 (Client)",
             "list_own.lua", f"{TOKENS_PATH}?{LIST_QUERY}", 200),
    Scenario("create", "POST api-tokens (admin, random Client account)", "create.lua",
             TOKENS_PATH, 201),
    Scenario("read-cold", "GET api-tokens/{id} as read, credential and view caches off",
             "read_self.lua", TOKENS_PATH, 200, server=COLD),
    Scenario("read-mix", f"GET api-tokens/{{id}}, 100,000 tokens, Zipf s={ZIPF_S}, cold start",
             "read_mix.lua", TOKENS_PATH, 200, server=MIX, warmup="windows"),
]
BY_NAME = {s.name: s for s in SCENARIOS}
SERVERS = [MAIN, COLD, MIX]
# Steps chosen with --scenarios like the scenarios, measured without wrk, after them.
STEPS = ("webhooks",)
