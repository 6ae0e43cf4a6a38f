"""Inspect a curate output folder with nothing but pyarrow installed.

The same as ``curate inspect`` (it runs that code from this checkout, which needs only
pyarrow and the standard library)::

    python scripts/inspect_shards.py OUT [--tier NAME] [--where "sharpness < 50"] \
        [--sample N] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curate.cli import main

if __name__ == "__main__":
    sys.exit(main(["inspect", *sys.argv[1:]]))
