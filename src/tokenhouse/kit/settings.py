"""Settings from the environment (prefix ``TOKENHOUSE_``)."""

import os
import secrets
import stat
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


class ConfigurationError(RuntimeError):
    """The server cannot start with these settings; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENHOUSE_")

    database_url: str = f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'tokenhouse.db'}"
    secret_key: SecretStr | None = None
    # How often the recorded `lastAccessAt` values are written to the database.
    last_access_interval: float = Field(default=10.0, gt=0)
    # Verified credentials kept in each process (see auth/cache.py).
    credential_cache_size: int = Field(default=100_000, ge=0)
    # Rendered tokens kept in each process for reads and list items (tokens/views.py).
    token_view_cache_size: int = Field(default=10_000, ge=0)
    # The longest lifetime of a token, in days (unset: no limit). A create without
    # `expiresAt` then gets now + the limit, and a later `expiresAt` is refused.
    max_token_lifetime_days: int | None = Field(default=None, gt=0, le=36_500)
    # Proxies whose X-Forwarded-For is believed: CIDRs or addresses, comma-separated (see
    # kit/addresses.py). Empty: the client's address is the socket's peer, always.
    trusted_proxies: str = ""
    # Redis, for rate limits counted across processes (kit/ratelimit.py); unset: each
    # process counts alone. `redis://[:password@]host:6379/0`.
    redis_url: SecretStr | None = None
    # The rate limit of tokens created without one: `<requests>/<seconds>`, e.g. `600/60`.
    default_rate_limit: str | None = None
    # The loosest rate limit a Client or Vendor token may give a token (`<n>/<seconds>`):
    # none at all, or a looser one, is a 400 but for Operations. Unset: any.
    max_rate_limit: str | None = None
    # Redis unreachable: requests pass uncounted (`open`) or are refused with 503.
    rate_limit_failure: Literal["open", "closed"] = "open"
    # Leak reports (POST .../api-tokens/revoke-leaked, no authentication) per client address
    # and hour; past it, 429.
    leak_reports_per_hour: int = Field(default=60, ge=1, le=1_000_000)
    log_level: str = "info"
    # One line per request (uvicorn's access log). Off where a proxy logs requests already,
    # or under load tests: the service's own lines stay at `log_level`.
    access_log: bool = True
    # GET /metrics and the timing of every request (kit/metrics.py); off: /metrics is a 404.
    metrics: bool = True
    # How often the process holding the jobs' lease runs the expiry notices
    # (tokens/expiry.py); a holder that stops is replaced within three intervals.
    job_interval: float = Field(default=60.0, gt=0)
    # Audit webhooks (webhooks/delivery.py): targets in private, loopback, link-local and
    # other non-global networks are refused unless true (a closed network, or tests).
    webhook_allow_private: bool = False
    # How often each process looks for records to fan out and deliveries that are due.
    webhook_poll_seconds: float = Field(default=1.0, gt=0, le=60)

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        """The file of an on-disk SQLite database, or None (memory, or another database)."""
        if not self.is_embedded:
            return None
        _, _, path = self.database_url.partition(":///")
        return Path(path) if path and path != ":memory:" else None

    def hmac_key(self) -> bytes:
        """The key of the keyed hash that protects stored secrets.

        With the embedded default the key is generated on first use into a file that only
        its owner can read, next to the database. With any other database it must be given:
        several processes must share it, and a generated one would be lost with the machine.
        """
        if self.secret_key is not None and self.secret_key.get_secret_value():
            key = self.secret_key.get_secret_value().encode()
            if len(key) < 32:
                raise ConfigurationError("TOKENHOUSE_SECRET_KEY must be at least 32 characters.")
            return key
        db_file = self.sqlite_path()
        if db_file is None:
            raise ConfigurationError(
                "TOKENHOUSE_SECRET_KEY is not set. It is required with any database other "
                "than the embedded SQLite file: set it to a random string of at least 32 "
                "characters (for example: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))') and keep it with your backups."
            )
        return _key_file(db_file.parent / "secret.key")


def private_sqlite_file(path: Path) -> None:
    """Create the embedded database's directory (0700) and file (0600) before SQLite opens
    it: the file holds every token's secret hash, and SQLite gives its -wal, -shm and
    -journal files the database file's mode. A file an older version left readable by
    others is narrowed to its owner."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for file in (path, *(path.with_name(path.name + end) for end in SQLITE_COMPANIONS)):
        try:
            status = file.stat()
        except FileNotFoundError:
            continue
        if status.st_mode & 0o077 and status.st_uid == os.geteuid():
            file.chmod(stat.S_IMODE(status.st_mode) & 0o700)


def _key_file(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ConfigurationError(
                f"The key file {path} is damaged; restore it from backup.") from None
        return key
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_urlsafe(48).encode())
    return path.read_bytes().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
