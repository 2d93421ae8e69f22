#!/usr/bin/env python3
"""Summarise py-spy profiles written by `bench/run.py --profile ...` (py-spy's raw format:
one collapsed stack and its sample count a line): the share of samples by package, and the
functions with the most samples, inclusive (on the stack) or self (on top).

    python bench/profile_top.py bench/results/*-profile-read-*.txt
    python bench/profile_top.py --self --top 30 FILE...

py-spy counts a sample whenever the thread is not idle, which includes time spent runnable
but waiting for a CPU: on a busy machine compare shares, not absolute times.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """`function (path/to/file.py:123)` without the line number."""
    return LINE.sub(")", frame.strip())


def package(frame: str) -> str:
    match = re.search(r"\((.*)\)", frame)
    path = match.group(1) if match else frame
    path = path.split("site-packages/")[-1]
    if path.startswith("<") or not path:
        return "(interpreter)"
    if "tokenhouse/" in path:
        return "tokenhouse"
    # py-spy shortens paths to the module path: its first part names the package.
    return path.lstrip("/").split("/")[0] if "/" in path else path.split(":")[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--self", dest="self_time", action="store_true",
                        help="rank functions by samples on top of the stack")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    inclusive: Counter[str] = Counter()
    on_top: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = [frame_name(f) for f in stack.split(";") if f.strip()]
            if not frames:
                continue
            for name in set(frames):
                inclusive[name] += samples
            on_top[frames[-1]] += samples
            packages[package(frames[-1])] += samples
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples in {len(args.files)} files\n\nself samples by package:")
    for name, samples in packages.most_common(12):
        print(f"  {100 * samples / total:5.1f}%  {name}")
    ranked = on_top if args.self_time else inclusive
    print(f"\nfunctions by {'self' if args.self_time else 'inclusive'} samples:")
    for name, samples in ranked.most_common(args.top):
        print(f"  {100 * samples / total:5.1f}%  {name[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
