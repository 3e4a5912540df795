"""`python tools/infer.py --cfg F`: the reproduction study's inference command.

Segments ``TEST.FILE`` (an image or a folder) with ``TEST.MODEL_PATH`` at ``TEST.IMAGE_SIZE``
into ``SAVE_DIR/test_results`` (overlays when ``TEST.OVERLAY``); same as
``ssformer predict --cfg F``. Runs from a checkout without installing.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SRC = Path(__file__).resolve().parents[1] / "src"
if (_SRC / "ssformer").is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from ssformer.cli import main  # noqa: E402 - after the path set-up

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
