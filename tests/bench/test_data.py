"""The benchmark's generated data (bench/data.py): what scenarios read, read-cold and read-mix
rely on. Fast and deterministic (a fixed seed); nothing is timed."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from bench.data import generate
from bench.modes import MODES

KEY = b"bench-test-key-of-at-least-32-characters"


def _tokens(path: Path) -> dict[str, dict[str, Any]]:
    lines = (json.loads(line) for line in path.read_text().splitlines())
    return {line["id"]: line for line in lines if line["id"].startswith("TKN-")}


def test_every_secret_is_an_active_token_stored_with_its_keyed_hash(tmp_path: Path) -> None:
    mode = MODES["smoke"]
    data = generate(tmp_path, mode, KEY, seed=1)
    tokens = _tokens(data.import_file)
    known = data.secrets_file.read_text().split()
    mix = data.mix_secrets_file.read_text().split()

    assert len(tokens) == mode.tokens
    assert len(known) == len(set(known)) == mode.known
    assert len(mix) == len(set(mix)) == data.mix_tokens == mode.mix_tokens
    assert set(known) <= set(mix)
    for secret in mix:
        token = tokens[secret.split(":")[1]]
        assert token["status"] == "Active"
        assert token["secretHash"] == hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()


def test_the_read_mix_pool_is_every_active_token_when_there_are_fewer(tmp_path: Path) -> None:
    # --small asks for 100,000 read-mix tokens out of 100,000 tokens, 80% of them Active.
    mode = dataclasses.replace(MODES["smoke"], mix_tokens=MODES["smoke"].tokens)
    data = generate(tmp_path, mode, KEY, seed=1)
    assert data.mix_tokens == data.statuses["Active"] < mode.tokens
    # The other statuses keep their shares: the list scenario filters on them.
    assert data.statuses["Disabled"] > 0 and data.statuses["Deleted"] > 0
    assert data.showcase_statuses["Active"] < data.showcase_tokens
