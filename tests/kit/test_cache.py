"""kit/cache.py: one way in (`get_or_load`, `load_many`) with the generation check inside, so
that a load racing a change never keeps the stale value; bounds; what each change drops."""

import asyncio

import pytest

from tokenhouse.kit.cache import TaggedCache
from tokenhouse.kit.invalidation import (
    ALL,
    CATALOG,
    AccountChanged,
    Seen,
    TokenChanged,
    decode,
    encode,
)


class Cache(TaggedCache[tuple[str, str]]):
    """Values are (token id, account id), tagged with themselves."""

    def tags(self, value: tuple[str, str]) -> tuple[str, str]:
        return value


def cache(max_entries: int = 100) -> Cache:
    made = Cache(max_entries)
    made.enable()
    return made


async def value(token_id: str, account_id: str = "ACC-1") -> tuple[str, str]:
    return token_id, account_id


async def test_a_value_is_loaded_once_then_served_from_memory() -> None:
    kept = cache()
    calls = 0

    async def load() -> tuple[str, str]:
        nonlocal calls
        calls += 1
        return "TKN-1", "ACC-1"

    assert await kept.get_or_load("k", load) == ("TKN-1", "ACC-1")
    assert await kept.get_or_load("k", load) == ("TKN-1", "ACC-1")
    assert calls == 1 and kept.get("k") == ("TKN-1", "ACC-1")


@pytest.mark.parametrize("change", [TokenChanged("TKN-1"), AccountChanged("ACC-1"), CATALOG,
                                    ALL, TokenChanged("TKN-other")])
async def test_a_load_racing_a_change_never_keeps_the_stale_value(change: object) -> None:
    """Any change that arrives while the database is read (even of another token: the
    cache cannot tell what the read saw) leaves the result unkept."""
    kept = cache()
    reading, release = asyncio.Event(), asyncio.Event()

    async def load() -> tuple[str, str]:
        reading.set()
        await release.wait()  # the database read is in flight ...
        return "TKN-1", "ACC-1"  # ... and returns what it read before the change

    loading = asyncio.create_task(kept.get_or_load("k", load))
    await reading.wait()
    kept.apply(change)  # type: ignore[arg-type]
    release.set()
    assert await loading == ("TKN-1", "ACC-1")  # the caller still gets its answer
    assert kept.get("k") is None  # but it is not kept
    assert await kept.get_or_load("k", load_now := lambda: value("TKN-1")) == ("TKN-1", "ACC-1")
    assert kept.get("k") is not None and load_now


async def test_load_many_racing_a_change_keeps_nothing() -> None:
    kept = cache()
    reading, release = asyncio.Event(), asyncio.Event()

    async def load() -> dict[str, tuple[str, str]]:
        reading.set()
        await release.wait()
        return {"a": ("TKN-1", "ACC-1"), "b": ("TKN-2", "ACC-1")}

    loading = asyncio.create_task(kept.load_many(load))
    await reading.wait()
    kept.apply(TokenChanged("TKN-2"))
    release.set()
    assert len(await loading) == 2
    assert kept.get("a") is None and kept.get("b") is None
    await kept.load_many(load_now := lambda: _many())
    assert kept.get("a") is not None and load_now


async def _many() -> dict[str, tuple[str, str]]:
    return {"a": ("TKN-1", "ACC-1")}


async def test_a_failed_load_keeps_nothing_and_raises() -> None:
    kept = cache()

    async def load() -> tuple[str, str]:
        raise LookupError("no such token")

    with pytest.raises(LookupError):
        await kept.get_or_load("k", load)
    assert kept.get("k") is None


async def test_changes_drop_what_they_name() -> None:
    kept = cache()
    for key, token_id, account_id in (("a1", "TKN-1", "ACC-A"), ("a2", "TKN-2", "ACC-A"),
                                      ("b1", "TKN-3", "ACC-B")):
        await kept.get_or_load(key, lambda t=token_id, a=account_id: value(t, a))
    kept.apply(Seen("TKN-3=1"))  # data, not a change of anything kept
    assert len(kept) == 3
    kept.apply(TokenChanged("TKN-3"))
    assert kept.get("b1") is None and kept.get("a1") is not None
    kept.apply(AccountChanged("ACC-A"))
    assert kept.get("a1") is None and kept.get("a2") is None
    await kept.get_or_load("c", lambda: value("TKN-4"))
    kept.apply(CATALOG)
    assert len(kept) == 0


async def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    kept = cache(max_entries=3)
    for n in range(3):
        await kept.get_or_load(f"h{n}", lambda n=n: value(f"TKN-{n}"))
    kept.get("h0")  # used: h1 is now the least recently used
    await kept.get_or_load("h3", lambda: value("TKN-3"))
    assert len(kept) == 3
    assert kept.get("h1") is None and kept.get("h0") is not None


async def test_a_cache_that_is_not_listening_answers_and_keeps_nothing() -> None:
    kept = Cache(10)
    await kept.get_or_load("h", lambda: value("TKN-1"))  # not listening yet: not kept
    assert kept.get("h") is None
    kept.enable()
    await kept.get_or_load("h", lambda: value("TKN-1"))
    kept.disable()
    assert kept.get("h") is None
    kept.enable()  # back, and empty: what changed meanwhile is unknown
    assert len(kept) == 0


def test_changes_travel_as_the_strings_of_earlier_versions() -> None:
    for change, wire in ((TokenChanged("TKN-1"), "token:TKN-1"),
                         (AccountChanged("ACC-1"), "account:ACC-1"),
                         (Seen("TKN-1=5"), "seen:TKN-1=5"), (CATALOG, "catalog:"),
                         (ALL, "all:")):
        assert encode(change) == wire and decode(wire) == change
    assert decode("all") == ALL and decode("something new") == ALL


async def test_load_reads_again_whatever_is_kept() -> None:
    """For a caller that tried `get` and wants the database's answer anyway."""
    kept = cache()
    await kept.get_or_load("k", lambda: value("TKN-1", "ACC-1"))
    assert await kept.load("k", lambda: value("TKN-1", "ACC-2")) == ("TKN-1", "ACC-2")
    assert kept.get("k") == ("TKN-1", "ACC-2")


def test_a_change_carries_its_origin_and_old_strings_still_read() -> None:
    from tokenhouse.kit.invalidation import _off_wire, _on_wire

    for change in (TokenChanged("TKN-1"), Seen("TKN-1=5,TKN-2=6"), CATALOG, ALL):
        assert _off_wire(_on_wire(change, "a1b2")) == ("a1b2", change)
        assert _off_wire(_on_wire(change, None)) == (None, change)
    assert _off_wire("token:TKN-1") == (None, TokenChanged("TKN-1"))
