"""The run's data: the import file (JSON Lines, as `tokenhouse export` writes it) and the
files the load generator reads (known secrets, read-mix's secrets by popularity rank, Client
account ids). Deterministic for a seed, but for the secrets."""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError
from bench.modes import Mode
from bench.scenarios import ACCESS_MANAGEMENT

# Extra modules a generated token may hold besides Access Management, by account type
# (each allowed for that type by the catalog of migrations/versions/0002_module_catalog.py).
EXTRA_MODULES = {"Client": ["MOD-3419", "MOD-4588", "MOD-5907", "MOD-6650"],
                 "Vendor": ["MOD-4073", "MOD-4588", "MOD-5907", "MOD-7281"]}
STATUSES = (("Active", 0.80), ("Disabled", 0.12), ("Deleted", 0.08))


@dataclass
class Dataset:
    import_file: Path
    secrets_file: Path       # the known secrets, one a line (read, introspect, read-cold)
    mix_secrets_file: Path   # read-mix's secrets, one a line, most popular first
    accounts_file: Path      # Client account ids, one a line (create makes tokens there)
    showcase_account: str    # the Client account of scenario list
    showcase_tokens: int
    showcase_statuses: dict[str, int]
    accounts: int
    tokens: int
    known: int
    mix_tokens: int
    token_modules: int
    statuses: dict[str, int]
    bytes: int


def _ids(rng: random.Random, prefix: str, count: int) -> list[str]:
    """`count` distinct random ids of the platform's form (PREFIX-dddd-dddd)."""
    return [f"{prefix}-{n // 10_000:04d}-{n % 10_000:04d}"
            for n in rng.sample(range(10**8), count)]


def _split(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` spread over `parts`, each within +-50% of the mean, adding up exactly."""
    mean = total / parts
    counts = [max(1, round(mean * rng.uniform(0.5, 1.5))) for _ in range(parts)]
    diff = total - sum(counts)
    step = 1 if diff > 0 else -1
    i = 0
    while diff:
        if counts[i % parts] + step >= 1:
            counts[i % parts] += step
            diff -= step
        i += 1
    return counts


def generate(workdir: Path, mode: Mode, key: bytes, seed: int) -> Dataset:
    """Accounts (about 70% Client), tokens spread over them with 80/12/8% statuses, and the
    secrets of `mode.known` Active Client tokens plus about `mode.mix_tokens` Active tokens
    (read-mix's pool; at most every Active token when the mode has fewer)."""
    rng = random.Random(seed)
    accounts = _ids(rng, "ACC", mode.accounts)
    # About 70% Client, the rest Vendor; the first account is a Client (the showcase).
    types = ["Client"] + ["Client" if rng.random() < 0.7 else "Vendor"
                          for _ in range(mode.accounts - 1)]
    counts = _split(rng, mode.tokens, mode.accounts)
    counts[0] = max(1, round(mode.tokens / mode.accounts))  # the showcase: about the mean
    # The difference goes to the last account, so that the total stays exact.
    counts[-1] += mode.tokens - sum(counts)
    if counts[-1] < 1:
        raise BenchError("too few tokens for the number of accounts")
    token_ids = _ids(rng, "TKN", mode.tokens)

    owner: list[int] = []
    for index, count in enumerate(counts):
        owner.extend([index] * count)
    client_tokens = [i for i, a in enumerate(owner) if types[a] == "Client"]
    if len(client_tokens) < mode.known:
        raise BenchError("not enough Client tokens for the known secrets")
    known = set(rng.sample(client_tokens, mode.known))
    del client_tokens
    # read-mix's pool: the known tokens, and each other token that draws Active with this
    # chance (5% over the expected need, so that the pool fills before the last tokens).
    others_active = (mode.tokens - mode.known) * STATUSES[0][1]
    mix_chance = min(1.0, 1.05 * max(0, mode.mix_tokens - mode.known) / max(others_active, 1))
    mix_secrets: list[str] = []
    mix_others = 0

    now = int(time.time())
    oldest = now - 3 * 365 * 86400
    span = (now - oldest) * 1000
    statuses = {name: 0 for name, _ in STATUSES}
    showcase_statuses = {name: 0 for name, _ in STATUSES}
    # Status by a uniform draw against cumulative weights.
    bounds, acc = [], 0.0
    for name, weight in STATUSES:
        acc += weight
        bounds.append((acc, name))
    # Module sets: Access Management plus 0 to 2 others allowed for the account type.
    combos: dict[str, list[list[str]]] = {
        kind: [[]] + [[m] for m in extra]
        + [[a, b] for i, a in enumerate(extra) for b in extra[i + 1:]]
        for kind, extra in EXTRA_MODULES.items()}
    link_rows = 0

    import_file = workdir / "import.jsonl"
    secrets_file = workdir / "secrets.txt"
    mix_secrets_file = workdir / "mix-secrets.txt"
    accounts_file = workdir / "client-accounts.txt"
    # Lines are written with f-strings rather than json.dumps (ten times faster, and every
    # value here is plain ASCII that needs no escaping); `tokenhouse import` validates them.
    with import_file.open("w", encoding="utf-8") as out, \
            secrets_file.open("w", encoding="utf-8") as known_out:
        for index, (account_id, kind) in enumerate(zip(accounts, types, strict=True)):
            out.write(f'{{"id":"{account_id}","name":"Bench {kind} {index + 1}",'
                      f'"type":"{kind}"}}\n')
        for index, token_id in enumerate(token_ids):
            account = owner[index]
            kind = types[account]
            secret: str | None = None
            if index in known:
                status = "Active"
                secret = f"idt:{token_id}:{secrets.token_urlsafe(32)}"
                known_out.write(secret + "\n")
            else:
                draw = rng.random()
                status = next(name for bound, name in bounds if draw < bound)
                if (status == "Active" and mix_others < mode.mix_tokens - mode.known
                        and rng.random() < mix_chance):
                    secret = f"idt:{token_id}:{secrets.token_urlsafe(32)}"
                    mix_others += 1
            if secret is not None:
                secret_hash: str | None = hmac.new(key, secret.encode(),
                                                   hashlib.sha256).hexdigest()
                mix_secrets.append(secret)
            else:
                # Deleted tokens have no hash (a delete drops it); the others get one whose
                # secret nobody knows, so the unique index has its real size.
                secret_hash = (None if status == "Deleted"
                               else f"{rng.getrandbits(256):064x}")
            modules = [ACCESS_MANAGEMENT, *rng.choice(combos[kind])]
            link_rows += len(modules)
            statuses[status] += 1
            if account == 0:
                showcase_statuses[status] += 1
            millis = oldest * 1000 + rng.randrange(span)
            created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
            module_refs = ",".join(f'{{"id":"{m}"}}' for m in modules)
            hash_part = f',"secretHash":"{secret_hash}"' if secret_hash else ""
            out.write(f'{{"id":"{token_id}","name":"Token {index + 1}",'
                      f'"account":{{"id":"{accounts[account]}"}},"modules":[{module_refs}],'
                      f'"status":"{status}","audit":{{"created":{{"at":"{created}.'
                      f'{millis % 1000:03d}Z"}}}}{hash_part}}}\n')
    # Popularity rank is the line number (lua/read_mix.lua); shuffled, so that the popular
    # tokens are spread over accounts instead of following the import file's order.
    rng.shuffle(mix_secrets)
    mix_secrets_file.write_text("".join(f"{s}\n" for s in mix_secrets), encoding="utf-8")
    accounts_file.write_text("".join(f"{a}\n" for a, t in zip(accounts, types, strict=True)
                                     if t == "Client"))
    return Dataset(import_file=import_file, secrets_file=secrets_file,
                   mix_secrets_file=mix_secrets_file, accounts_file=accounts_file,
                   showcase_account=accounts[0], showcase_tokens=counts[0],
                   showcase_statuses=showcase_statuses, accounts=mode.accounts,
                   tokens=mode.tokens, known=mode.known, mix_tokens=len(mix_secrets),
                   token_modules=link_rows, statuses=statuses,
                   bytes=import_file.stat().st_size)


def first_line(path: Path) -> str:
    """The first line of a small-lined file (a secret, an account id), without reading all."""
    with path.open(encoding="utf-8") as handle:
        return handle.readline().strip()
