"""Reading a checkpoint file safely: ``torch.load(..., weights_only=True)`` (checkpoints come
from the internet) or ``safetensors``, with one clear :class:`~ssformer.errors.CheckpointError`
for every way a file can be wrong: missing, empty, an HTML page saved by a failed download,
truncated, pickled objects that safe loading refuses, or not a dict. What the dict holds is the
business of :mod:`ssformer.models.loading`."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ssformer.errors import CheckpointError
from ssformer.io.sniff import looks_like_html, looks_like_safetensors, read_head

__all__ = ["read_checkpoint"]


def _first_sentence(error: BaseException) -> str:
    text = str(error).strip()
    return text.split(". ")[0].splitlines()[0] if text else type(error).__name__


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is a damaged or truncated safetensors file "
            f"({_first_sentence(error)}); delete it and download again"
        ) from error


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load ``path`` with ``weights_only=True`` and return the top-level dict.

    Raises :class:`CheckpointError` for a missing, empty, truncated or HTML file, for pickled
    objects that ``weights_only`` refuses and for anything that is not a dict.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path or download it")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file (a directory?); pass a .pth file")
    try:
        head = read_head(path)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); delete it and download again")
    if looks_like_html(head):
        raise CheckpointError(
            f"checkpoint {path} is an HTML page, not a PyTorch checkpoint: a failed download "
            "(e.g. Google Drive's 'quota exceeded' or 'cannot scan for viruses' page). Delete it "
            "and download again later, or download it manually in a browser from the Drive link "
            "in the README and put it at this path"
        )
    if looks_like_safetensors(head, path):
        return _read_safetensors(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        if "weights only" in text.lower() or "weights_only" in text.lower():
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" ({found[1]})" if found else ""
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects{what} that safe loading "
                "(weights_only=True) refuses. Only plain state dicts are accepted: re-save it as "
                "torch.save(model.state_dict(), path) from code you trust"
            ) from error
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({_first_sentence(error)}); delete it "
            "and download again"
        ) from error
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
    ) as error:
        first = _first_sentence(error)
        size = path.stat().st_size
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) is truncated or not a PyTorch file ({first}); "
            "an interrupted download is the usual cause: delete it and download again"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(payload).__name__}, not a dict of weights; "
            "save checkpoints as torch.save(model.state_dict(), path)"
        )
    return payload
