"""`python tools/train.py --cfg F [...]`: the reproduction study's command, now `ssformer train`.

Runs from a checkout without installing (adds ../src to the import path); imports no sibling
script.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "ssformer").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from ssformer.cli import main  # noqa: E402 - after the path set-up

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
