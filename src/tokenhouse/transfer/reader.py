"""The second process of a large import (service._chunks): batches of lines in on stdin,
their chunks out on stdout, each pickled and led by its length in 8 bytes."""

import pickle
import signal
import sys
from typing import IO, Any

from tokenhouse.transfer.service import read_batch

LENGTH = 8


def receive(source: IO[bytes]) -> Any | None:
    """The next message, or None at the end of the input."""
    head = source.read(LENGTH)
    if len(head) < LENGTH:
        return None
    # Pickle, read from the import that started this process: no one else writes here.
    return pickle.loads(source.read(int.from_bytes(head, "big")))  # noqa: S301


def frame(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(LENGTH, "big") + body


def main() -> None:
    # Ctrl-C reaches the whole process group: the import that started this process is the
    # one to stop (it ends this one), without a second traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    while (message := receive(source)) is not None:
        sink.write(frame(read_batch(*message)))
        sink.flush()


if __name__ == "__main__":
    main()
