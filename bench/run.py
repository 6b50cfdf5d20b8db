#!/usr/bin/env python3
"""Side-by-side HTTP and WebSocket benchmark of ruvicorn and its peers, in one command.

    python bench/run.py            # full run (~25-30 min), writes bench/results/
    python bench/run.py --quick    # smoke run (~4 min), writes bench/results-partial/

The runner itself is the ``runner`` package next to this file (see its docstring).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script (or loaded by path in tests): the package is found next to this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner.cli import main, output_dir, parse_args

__all__ = ["main", "output_dir", "parse_args"]

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
