"""The image sizes weights were trained and evaluated at, and the size inference runs at.

Our checkpoints record them in ``meta`` (``train_size``, ``eval_size``, ``recipe``; files written
before these entries have them in ``meta.config``). ``predict``, ``export`` and ``val`` run at the
recorded evaluation size unless told another size, which they use with a warning: a model trained
at 96 px and run at 352 px marks things it never saw at that scale (e.g. specular highlights) as
polyps. Weights that record nothing (the official SSFormer's and the study's files) keep the
configured size or the default, and the printed line says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssformer.image_size import PAPER_SIZE, format_size, size_or_none

__all__ = ["RecordedSizes", "choose_size", "recorded_sizes"]


@dataclass(frozen=True)
class RecordedSizes:
    """What a checkpoint of ours records: training and evaluation size ``(h, w)``, recipe."""

    train: tuple[int, int] | None
    eval: tuple[int, int] | None
    recipe: str | None = None

    def as_meta(self) -> dict[str, Any]:
        """The checkpoint ``meta`` entries."""
        return {
            "train_size": list(self.train) if self.train else None,
            "eval_size": list(self.eval) if self.eval else None,
            "recipe": self.recipe,
        }


def sizes_from_config(config: Mapping[str, Any]) -> RecordedSizes:
    """The sizes and recipe of a config's ``to_dict()`` (what a run records)."""
    train = config.get("TRAIN") or {}
    evaluation = config.get("EVAL") or {}
    return RecordedSizes(
        size_or_none(train.get("IMAGE_SIZE")),
        size_or_none(evaluation.get("IMAGE_SIZE")),
        evaluation.get("RECIPE"),
    )


def recorded_sizes(path: str | Path) -> RecordedSizes | None:
    """The sizes a checkpoint of ours records, or ``None`` (foreign weights, exports, a file
    that does not read: the loader that follows reports what is wrong with it)."""
    import torch

    path = Path(path)
    if path.suffix.lower() not in (".pth", ".pt") or not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not ours to diagnose here
        return None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if payload.get("format") != "ssformer" or not isinstance(meta, dict):
        return None
    stored = sizes_from_config(meta.get("config") or {})
    train = size_or_none(meta.get("train_size")) or stored.train
    evaluation = size_or_none(meta.get("eval_size")) or stored.eval
    if train is None and evaluation is None:
        return None
    return RecordedSizes(train, evaluation, meta.get("recipe") or stored.recipe)


def choose_size(
    recorded: RecordedSizes | None,
    *,
    told: tuple[int, int] | None = None,
    told_by: str = "--size",
    configured: tuple[int, int] | None = None,
    configured_by: str = "the config",
    echo: Callable[[str], object] = print,
) -> tuple[int, int]:
    """The input size ``(h, w)`` to run weights at, with one printed line saying why.

    ``told``: a size the user asked for on the command line (used; a warning if the weights were
    evaluated at another); ``configured``: a size a config file holds (the weights' own size
    wins over it, with a note); else the recorded size, else ``configured`` or
    :data:`ssformer.image_size.PAPER_SIZE`.
    """
    known = recorded.eval if recorded is not None else None
    trained = f" (trained at {format_size(recorded.train)})" if recorded and recorded.train else ""
    if told is not None:
        if known is not None and tuple(told) != known:
            echo(
                f"warning: running at {format_size(told)} ({told_by}), but the weights were "
                f"evaluated at {format_size(known)}{trained}: at a size it was not trained for, a "
                f"model may mark what it never saw at that scale; drop {told_by} to use "
                f"{format_size(known)}"
            )
        else:
            echo(f"input size {format_size(told)} ({told_by})")
        return tuple(told)  # type: ignore[return-value]
    if known is not None:
        if configured is not None and tuple(configured) != known:
            echo(
                f"note: {configured_by} says {format_size(configured)}, the weights were "
                f"evaluated at {format_size(known)}{trained}: using theirs"
            )
        echo(f"input size {format_size(known)} (recorded in the weights{trained})")
        return known
    size = tuple(configured) if configured is not None else PAPER_SIZE
    source = configured_by if configured is not None else "the default"
    echo(f"input size {format_size(size)} ({source}; the weights do not record their size)")
    return size  # type: ignore[return-value]


def overridden(overrides: Sequence[str], key: str) -> tuple[int, int] | None:
    """The size a ``--set KEY=[h,w]`` (or ``KEY=s``) gives, or ``None`` when not set."""
    import yaml

    for item in reversed(overrides):
        name, _, value = item.partition("=")
        if name.strip().upper() == key.upper():
            parsed = yaml.safe_load(value)
            if isinstance(parsed, int):
                return parsed, parsed
            return size_or_none(parsed)
    return None
