#!/usr/bin/env python3
"""Entry point of the load benchmark (`make bench`):

    .venv/bin/python bench/run.py            # --full: 1,000,000 tokens (PostgreSQL)
    .venv/bin/python bench/run.py --small    # 100,000 tokens (PostgreSQL, or --database sqlite)
    .venv/bin/python bench/run.py --smoke --database sqlite   # seconds; what CI runs

The package's layout is in bench/__init__.py, the method and the figures in bench/README.md.
"""

import sys
from pathlib import Path

# Run as a script, Python puts this directory first on the path: the package's parent takes
# its place, so that `bench.*` imports resolve and the modules here cannot shadow others.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.benchmark import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
