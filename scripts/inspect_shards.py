"""Inspect a curate output folder with nothing but pyarrow installed.

The same as ``curate inspect``: it runs that code, which needs only pyarrow and the standard
library, so this checkout installed without its dependencies (``pip install --no-deps -e .``)
is enough; from the repository root, ``python -m scripts.inspect_shards`` needs no install::

    python scripts/inspect_shards.py OUT [--tier NAME] [--where "sharpness < 50"] \
        [--sample N] [--json]
"""

from __future__ import annotations

import sys

from curate.cli import main

if __name__ == "__main__":
    sys.exit(main(["inspect", *sys.argv[1:]]))
