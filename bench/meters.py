"""What is watched while the load runs, from /proc: the RSS of the server's processes
(sampled in a thread), the CPU time of its workers and of the database's PostgreSQL backends,
and, on request, a py-spy profile of each worker."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes ({} if it is gone)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, amount = line.split(":", 1)
                    values[name] = int(amount.split()[0]) * 1024
    except OSError:
        return {}
    return values


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                found.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_backends(database: str | None) -> list[int]:
    """The PostgreSQL backend processes serving `database` (their title names it)."""
    if not database:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            command = _cmdline(int(entry))
            if command.startswith("postgres: ") and f" {database} " in command:
                found.append(int(entry))
    return found


class MemorySampler:
    """Samples the RSS of the server's process tree (every `interval` seconds) in a thread.
    Workers are the descendants of the server process but for multiprocessing's resource
    tracker; the server process itself is the supervisor."""

    def __init__(self, root: int, interval: float = 0.2):
        self.root = root
        self.interval = interval
        self.peak: dict[int, int] = {}         # pid -> highest sampled RSS
        self.hwm: dict[int, int] = {}          # pid -> VmHWM last read
        self.commands: dict[int, str] = {}
        self._window: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def tree(self) -> list[int]:
        pids, pending = [], [self.root]
        while pending:
            pid = pending.pop()
            pids.append(pid)
            pending.extend(_children(pid))
        return pids

    def workers(self) -> list[int]:
        return [pid for pid in self.commands
                if pid != self.root and "resource_tracker" not in self.commands[pid]]

    def sample(self) -> None:
        for pid in self.tree():
            values = _status(pid)
            if not values:
                continue
            with self._lock:
                if pid not in self.commands:
                    self.commands[pid] = _cmdline(pid)
                rss = values.get("VmRSS", 0)
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
                self._window[pid] = max(self._window.get(pid, 0), rss)
                self.hwm[pid] = max(self.hwm.get(pid, 0), values.get("VmHWM", 0))

    def window(self) -> dict[int, int]:
        """The highest RSS per process since the last call (one scenario run)."""
        self.sample()
        with self._lock:
            window, self._window = self._window, {}
        return window

    def start(self) -> None:
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self.sample()
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


class CpuMeter:
    """CPU seconds spent by the server's workers and the database's backends during one run.
    On a shared machine these are steadier than requests/s: they say what a request costs,
    whatever else was running."""

    def __init__(self, sampler: MemorySampler, database: str | None):
        self.sampler = sampler
        self.database = database

    def snapshot(self) -> dict[str, dict[int, float]]:
        return {"server": {pid: cpu_seconds(pid) for pid in self.sampler.tree()},
                "postgres": {pid: cpu_seconds(pid) for pid in postgres_backends(self.database)}}

    @staticmethod
    def delta(before: dict[str, dict[int, float]],
              after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {part: round(sum(value - before[part].get(pid, 0.0)
                                for pid, value in after[part].items()), 3)
                for part in after}


def profile_start(py_spy: str, workers: list[int], name: str, duration: int, out_dir: Path,
                  stamp: str) -> list[subprocess.Popen[bytes]]:
    """py-spy on each worker for `duration` seconds (raw format, 200 Hz, without pausing
    the worker); its messages go to a .log beside each output file."""
    started = []
    for pid in workers:
        out = out_dir / f"{stamp}-profile-{name}-{pid}.txt"
        with out.with_suffix(".log").open("wb") as messages:
            started.append(subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--duration", str(duration),
                 "--rate", "200", "--nonblocking", "--format", "raw", "--output", str(out)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=messages))
    return started
