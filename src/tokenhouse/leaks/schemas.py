"""The body of a leak report and its answer."""

from typing import Annotated

from pydantic import Field

from tokenhouse.kit.wire import WireIn, WireOut

MAX_SECRETS = 100
# A secret is at most 274 characters (kit/crypto.py); anything longer is not one. Bounded so
# that a report's size is known before anything is hashed.
MAX_SECRET_LENGTH = 1024
MAX_SOURCE_LENGTH = 4096


class LeakReport(WireIn):
    """Secrets found in public (a repository, a paste, a log), and where."""

    tokens: list[Annotated[str, Field(max_length=MAX_SECRET_LENGTH)]] = Field(
        min_length=1, max_length=MAX_SECRETS,
        description=f"The secrets found, up to {MAX_SECRETS}; anything that is not a valid "
                    "secret is ignored.")
    source: str | None = Field(
        default=None, max_length=MAX_SOURCE_LENGTH,
        description="Where they were found: a URL or a short text (logged with each "
                    "revocation).")


class LeakReceived(WireOut):
    """The same answer whatever the secrets were: it tells nothing of them."""

    received: int = Field(description="How many secrets the report held.")
