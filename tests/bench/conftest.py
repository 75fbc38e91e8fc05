"""The benchmarks' own code (bench/): its scripts import their helpers as `_common`, as they
do when run from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
