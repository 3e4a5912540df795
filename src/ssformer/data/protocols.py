"""The protocol-to-datasets map: which folders a config trains on, selects the best epoch on and
tests on. Training, validation during training and ``ssformer val`` all ask
:func:`build_datasets`; no other module knows the folder layout of a protocol.

- ``split`` (the reproduction study): ``DATASET.ROOT/{train,val,test}/{images,masks}``, made by
  ``ssformer split`` (80/10/10, seed 1337). For evaluation alone, ``DATASET.ROOT`` may also be
  one folder holding ``images/`` + ``masks/``.
- ``pranet`` (the SSFormer paper): train on ``TrainDataset`` less a held-out part of
  ``DATASET.VAL_FRACTION`` (seeded by ``DATASET.SPLIT.SEED``), which is the validation set; test
  on the PraNet test sets present under ``TestDataset`` (a benchmark folder may hold only some
  of the five; :attr:`ProtocolData.missing_test_sets` names the others, and training and
  ``ssformer val`` say so).

Test sets, and every set ``ssformer val`` scores, are read as ``EVAL.RECIPE`` prescribes
(:class:`~ssformer.data.recipes.RecipeEvalDataset`: the original pipeline's resize and GT
rule). Model selection during training scores the validation set through the fast cached
pipeline instead (:class:`~ssformer.data.datasets.PolypDataset` at ``EVAL.IMAGE_SIZE``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import Dataset, Subset

from ssformer.data.datasets import PolypDataset, holdout_indices
from ssformer.data.layout import PRANET_PROTOCOL, SPLIT_PROTOCOL
from ssformer.data.recipes import RecipeEvalDataset
from ssformer.data.split import MANIFEST_NAME, stale_split_problems
from ssformer.data.transforms import build_eval_transform, build_train_transform
from ssformer.errors import ConfigError, DataError
from ssformer.io.paths import why_not_folder

if TYPE_CHECKING:
    from ssformer.config import Config

__all__ = ["EVAL_SPLITS", "ProtocolData", "build_datasets"]

EVAL_SPLITS = ("val", "test")


@dataclass
class ProtocolData:
    """The datasets of one protocol: ``train`` (None when only evaluating) and the validation
    and test sets by name (``{"val": ...}``, ``{"test": ...}`` or the PraNet test sets)."""

    train: Dataset | None = None
    val: dict[str, Dataset] = field(default_factory=dict)
    test: dict[str, Dataset] = field(default_factory=dict)
    missing_test_sets: tuple[str, ...] = ()

    def missing_note(self) -> str | None:
        """A line naming the PraNet test sets absent from the benchmark folder (None if all
        five are there, or the protocol has none)."""
        if not self.missing_test_sets:
            return None
        return (
            f"PraNet test sets missing from {PRANET_PROTOCOL.test}/ (not scored): "
            f"{', '.join(self.missing_test_sets)}; scoring {', '.join(self.test) or 'none'}"
        )

    def evaluation_sets(self, split: str) -> dict[str, Dataset]:
        """The sets of ``split`` (``val`` or ``test``)."""
        return self.val if split == "val" else self.test


def build_datasets(config: Config, split: str | None = None) -> ProtocolData:
    """The datasets of ``config``'s protocol: all three for training (``split=None``), or only
    the evaluation sets of ``split`` (``val`` or ``test``)."""
    if split is not None and split not in EVAL_SPLITS:
        raise ConfigError(f"--split {split!r}: choose test or val")
    root = Path(config.dataset.root)
    if not root.is_dir():
        raise DataError(
            f"DATASET.ROOT={root} {why_not_folder(root)}; point it at a data folder, or download "
            "the data (`ssformer download data kvasir-seg`) and split it (`ssformer split "
            "data/Kvasir-SEG`), or generate synthetic data (`ssformer demo`)"
        )
    if config.dataset.protocol == "pranet":
        return _pranet(config, root, split)
    return _split(config, root, split)


def _resize_rule(config: Config) -> str:
    """The cached pairs the training augmentation starts from: the study's augmentation starts
    from its aspect-kept ``Resize``, the official one from a square pair."""
    return "study" if config.train.augment == "study" else "square"


def _evaluation_set(config: Config, folder: Path) -> RecipeEvalDataset:
    """``folder`` as ``EVAL.RECIPE`` prepares it (:mod:`ssformer.data.recipes`)."""
    return RecipeEvalDataset(folder, str(config.eval.recipe), tuple(config.eval.image_size))


def _refuse_stale_split(root: Path) -> None:
    """A split whose files or source changed since its manifest was written is refused, each
    file named: it would train or score on other pairs than the ones it says."""
    problems = stale_split_problems(root)
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise DataError(
            f"DATASET.ROOT={root} no longer matches its {MANIFEST_NAME}: "
            f"{'; '.join(problems[:10])}{more}. Run `ssformer split SOURCE --output {root}` "
            "to place changed files again (it refuses, by name, pairs added or removed), and "
            f"`ssformer split SOURCE --output {root} --check` to see every difference"
        )


def _split(config: Config, root: Path, split: str | None) -> ProtocolData:
    _refuse_stale_split(root)
    eval_size = tuple(config.eval.image_size)
    eval_tf = build_eval_transform(eval_size)
    if split is not None:
        if (root / split).is_dir():
            sets = {split: _evaluation_set(config, root / split)}
        elif (root / "images").is_dir() or (root / "image").is_dir():
            sets = {split: _evaluation_set(config, root)}
        else:
            raise DataError(
                f"DATASET.ROOT={root} has no {split}/ folder (nor images/ + masks/); split the "
                f"dataset with `ssformer split {root}` and point DATASET.ROOT at its output"
            )
        return ProtocolData(**{split: sets})
    folders = SPLIT_PROTOCOL
    missing = [s for s in (folders.train, folders.val, folders.test) if not (root / s).is_dir()]
    if missing:
        raise DataError(
            f"DATASET.ROOT={root} has no {', '.join(missing)} folder(s); the split protocol "
            f"needs ROOT/{{train,val,test}}/{{images,masks}}: run `ssformer split {root}` "
            "and point DATASET.ROOT at its output"
        )
    train_size = tuple(config.train.image_size)
    train_tf = build_train_transform(train_size, config.train.augment)
    return ProtocolData(
        train=PolypDataset(
            root / folders.train, train_size, transform=train_tf, resize=_resize_rule(config)
        ),
        val={"val": PolypDataset(root / str(folders.val), eval_size, transform=eval_tf)},
        test={"test": _evaluation_set(config, root / folders.test)},
    )


def _pranet(config: Config, root: Path, split: str | None) -> ProtocolData:
    eval_size = tuple(config.eval.image_size)
    eval_tf = build_eval_transform(eval_size)
    protocol = PRANET_PROTOCOL
    train_root = root / protocol.train
    data = ProtocolData()
    if split in (None, "test"):
        folders = {name: protocol.test_set_folder(root, name) for name in protocol.test_sets}
        data.test = {
            name: _evaluation_set(config, folder)
            for name, folder in folders.items()
            if folder.is_dir()
        }
        if not data.test:
            raise DataError(f"{root / protocol.test} holds none of the sets {protocol.test_sets}")
        data.missing_test_sets = tuple(n for n in protocol.test_sets if n not in data.test)
    if split in (None, "val"):
        # model selection during training: the cached pipeline; `ssformer val --split val`:
        # the recipe's
        full_eval = (
            PolypDataset(train_root, eval_size, transform=eval_tf)
            if split is None
            else _evaluation_set(config, train_root)
        )
        held_out, rest = holdout_indices(
            len(full_eval), config.dataset.val_fraction, config.dataset.split.seed
        )
        data.val = {"val": Subset(full_eval, held_out)}
        if split is None:
            train_size = tuple(config.train.image_size)
            train_tf = build_train_transform(train_size, config.train.augment)
            full_train = PolypDataset(
                train_root, train_size, transform=train_tf, resize=_resize_rule(config)
            )
            data.train = Subset(full_train, rest)
    return data
