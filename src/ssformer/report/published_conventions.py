"""Metric conventions and the published numbers they may be compared with.

Every polyp-segmentation paper reports "mIoU" and "mDice", but they mean different things. A
number of ours is only ever put beside a published number of the *same* convention:

============================ ============================== ========== ===========================
published ``metric_convention`` our keys (mIoU, mDice)         scale      who publishes it
============================ ============================== ========== ===========================
``pooled-2-class-mean-x100``  ``mIoU_2cls``, ``mDice_2cls``  ×100       the reproduction study
                                                                        (Singhal, CS598 DL4H 2022)
``per-image-foreground``      ``mIoU``, ``mDice``            fraction   the SSFormer paper
                                                                        (Wang et al., MICCAI 2022)
``pranet-toolbox``            ``mIoU``, ``mDice``            fraction   Polyp-PVT, PraNet
``official-test-py``          ``official_iou``,              fraction   the official SSFormer
                              ``official_dice``                         repository's README table
                                                                        (withdrawn, see below)
============================ ============================== ========== ===========================

* ``pooled-2-class-mean-x100``: one confusion matrix pooled over all test pixels at evaluation
  size, argmax of the logits, IoU/Dice of background and polyp averaged, times 100.
* ``per-image-foreground`` / ``pranet-toolbox``: per image, the min-max-normalised probability at
  the ground truth's original size, Dice/IoU at 256 thresholds averaged, then averaged over images
  (the PraNet evaluation toolbox). The SSFormer paper's numbers are believed to follow it.
* ``official-test-py``: the official ``test.py``: binarise at 0.5 first, then the 256-threshold
  loop; roughly 0.996 x Dice@0.5. The only published numbers of this convention, the official
  repository's README table, were withdrawn by its authors as an old version (Qiming-Huang/ssformer
  issue 7, removed 2022-12-01): ``published-results.csv`` keeps them with status ``withdrawn``
  and the report compares with them only when asked (``ssformer report --withdrawn``).

Our evaluator (:mod:`ssformer.metrics`) already writes ``mIoU_2cls``/``mDice_2cls`` x100 and the
other keys as fractions, i.e. in the published scale of their convention: ours are compared as
they are (:attr:`Convention.scale` = 1 for all; it exists so that a future key in another
scale is converted in one place).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ssformer.errors import ConfigError


@dataclass(frozen=True)
class Convention:
    """How one published metric convention maps onto our evaluator's keys."""

    name: str
    short: str
    our_keys: dict[str, str]
    scale: float
    digits: int
    description: str

    def header(self, metric: str) -> str:
        """Column header that names the convention, e.g. ``mDice_2cls (study: pooled ...)``."""
        return f"{self.our_keys[metric]} ({self.short})"


CONVENTIONS: dict[str, Convention] = {
    "pooled-2-class-mean-x100": Convention(
        name="pooled-2-class-mean-x100",
        short="study: pooled 2-class mean ×100",
        our_keys={"mIoU": "mIoU_2cls", "mDice": "mDice_2cls"},
        scale=1.0,
        digits=2,
        description=(
            "confusion matrix pooled over all test pixels, argmax, mean of background and polyp, "
            "×100 (the reproduction study)"
        ),
    ),
    "per-image-foreground": Convention(
        name="per-image-foreground",
        short="paper: per-image foreground",
        our_keys={"mIoU": "mIoU", "mDice": "mDice"},
        scale=1.0,
        digits=4,
        description=(
            "per image, foreground Dice/IoU averaged over 256 thresholds, mean over images "
            "(SSFormer paper; PraNet toolbox)"
        ),
    ),
    "pranet-toolbox": Convention(
        name="pranet-toolbox",
        short="PraNet toolbox",
        our_keys={"mIoU": "mIoU", "mDice": "mDice"},
        scale=1.0,
        digits=4,
        description=(
            "PraNet evaluation toolbox: per image, 256 thresholds averaged, mean over images "
            "(Polyp-PVT, PraNet)"
        ),
    ),
    "official-test-py": Convention(
        name="official-test-py",
        short="official test.py",
        our_keys={"mIoU": "official_iou", "mDice": "official_dice"},
        scale=1.0,
        digits=4,
        description=(
            "the official SSFormer test.py: binarise at 0.5, then the 256-threshold loop "
            "(≈0.996·Dice@0.5)"
        ),
    ),
}

METRICS: tuple[str, ...] = ("mIoU", "mDice")

SOURCE_NAMES: dict[str, str] = {
    "reproduction-study": "reproduction study (Singhal 2022)",
    "ssformer-paper": "SSFormer paper (Wang et al. 2022)",
    "ssformer-official-repo": (
        "official SSFormer repo's former README table, WITHDRAWN by its authors as an old "
        "version (Qiming-Huang/ssformer issue 7; removed 2022-12-01); kept for reference only"
    ),
    "polyp-pvt-paper": "Polyp-PVT paper",
    "pranet-paper": "PraNet paper",
}

PROTOCOL_ALIASES: dict[str, str] = {
    "split": "split-80-10-10-seed-1337",
    "split-80-10-10-seed-1337": "split-80-10-10-seed-1337",
    "seed": "split-80-10-10-seed-1337",
    "pranet": "pranet",
    "per-dataset-in-domain": "per-dataset-in-domain",
}

DATASET_ALIASES: dict[str, str] = {
    "kvasir": "Kvasir-SEG",
    "kvasir-seg": "Kvasir-SEG",
    "kvasirseg": "Kvasir-SEG",
    "cvcclinicdb": "CVC-ClinicDB",
    "cvc-clinicdb": "CVC-ClinicDB",
    "clinicdb": "CVC-ClinicDB",
    "pranet": "PraNet-TrainDataset",
    "pranet-traindataset": "PraNet-TrainDataset",
    "traindataset": "PraNet-TrainDataset",
    "cvc-colondb": "CVC-ColonDB",
    "cvccolondb": "CVC-ColonDB",
    "etis-laribpolypdb": "ETIS-LaribPolypDB",
    "etis": "ETIS-LaribPolypDB",
    "cvc-300": "CVC-300",
    "cvc300": "CVC-300",
    "synthetic": "synthetic",
}

HEAD_FAMILIES: dict[str, str] = {"SSFormer": "PLD", "PLDSegFormer": "PLD", "SegFormer": "SeD"}


def canonical_protocol(name: str | None) -> str:
    """The published-results spelling of a protocol name (``split`` -> ``split-80-10-10-...``)."""
    if not name:
        return "unknown"
    return PROTOCOL_ALIASES.get(str(name).strip().lower(), str(name).strip())


def canonical_dataset(name: str | None) -> str:
    """The published-results spelling of a dataset name (``Kvasir`` -> ``Kvasir-SEG``)."""
    if not name:
        return "unknown"
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    if key.startswith("synthetic") or key.startswith("synth"):
        return "synthetic"
    return DATASET_ALIASES.get(key, str(name).strip())


def canonical_test_set(name: str | None, protocol: str) -> str:
    """A test-set name as the published table spells it for ``protocol``.

    The PraNet benchmark calls its Kvasir test set ``Kvasir`` while the split protocol uses the
    whole ``Kvasir-SEG`` dataset.
    """
    canonical = canonical_dataset(name)
    if protocol == "pranet" and canonical == "Kvasir-SEG":
        return "Kvasir"
    return canonical


def head_of(model: str) -> str:
    """Decoder family of a model name: ``PLD`` or ``SeD``; the name itself when unknown."""
    return HEAD_FAMILIES.get(model, model)


STATUSES: tuple[str, ...] = ("published", "withdrawn")
"""``published-results.csv``'s ``status``: a withdrawn table is kept for reference but is never
the default comparison (an empty or absent column reads as ``published``)."""


@dataclass(frozen=True)
class PublishedResult:
    """One row of ``published-results.csv``."""

    source: str
    protocol: str
    metric_convention: str
    train_data: str
    test_set: str
    model: str
    backbone: str
    head: str
    values: dict[str, float]
    status: str = "published"

    @property
    def withdrawn(self) -> bool:
        """Whether its authors withdrew the table this row comes from."""
        return self.status == "withdrawn"


def reference_path(name: str) -> Path:
    """Path of a packaged reference file (``published-results.csv``, ``model-sizes.csv``)."""
    return Path(str(resources.files("ssformer").joinpath("reference", name)))


def load_published(path: Path | None = None) -> list[PublishedResult]:
    """Read ``published-results.csv`` (the packaged copy unless ``path`` is given)."""
    path = path or reference_path("published-results.csv")
    required = {"source", "protocol", "metric_convention", "train_data", "test_set", "model"}
    required |= {"backbone", "head", *METRICS}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(
                    f"{path}: columns {sorted(missing)} are missing; "
                    "restore the file from the ssformer package"
                )
            rows = list(reader)
    except OSError as error:
        raise ConfigError(f"cannot read published results {path}: {error}") from error
    results = []
    for line, row in enumerate(rows, start=2):
        if row["metric_convention"] not in CONVENTIONS:
            raise ConfigError(
                f"{path}:{line}: unknown metric_convention {row['metric_convention']!r}; "
                f"known: {sorted(CONVENTIONS)}"
            )
        try:
            values = {metric: float(row[metric]) for metric in METRICS if row[metric]}
        except ValueError as error:
            raise ConfigError(f"{path}:{line}: not a number: {error}") from error
        status = (row.get("status") or "published").strip()
        if status not in STATUSES:
            raise ConfigError(
                f"{path}:{line}: status {status!r} is not one of {', '.join(STATUSES)}"
            )
        results.append(
            PublishedResult(
                source=row["source"],
                protocol=row["protocol"],
                metric_convention=row["metric_convention"],
                train_data=row["train_data"],
                test_set=row["test_set"],
                model=row["model"],
                backbone=row["backbone"],
                head=row["head"],
                values=values,
                status=status,
            )
        )
    return results


def withdrawn_note(published: list[PublishedResult], included: bool) -> str:
    """One sentence for the report on the withdrawn tables among ``published`` ("" if none)."""
    sources = sorted({row.source for row in published if row.withdrawn})
    if not sources:
        return ""
    named = "; ".join(f"`{s}`: {SOURCE_NAMES.get(s, s)}" for s in sources)
    if included:
        return f"Published numbers labelled *withdrawn* come from a withdrawn table ({named})."
    return (
        f"Not compared: {named}. Its rows stay in published-results.csv with status "
        "`withdrawn`; `ssformer report RUNS --withdrawn` puts them beside ours, labelled "
        "withdrawn."
    )


def find_published(
    published: list[PublishedResult],
    *,
    protocol: str,
    convention: str,
    train_data: str,
    test_set: str,
    model: str,
    backbone: str,
    include_withdrawn: bool = False,
) -> PublishedResult | None:
    """The published row for exactly this protocol, convention, data, model and backbone;
    rows of a withdrawn table only with ``include_withdrawn``."""
    for row in published:
        if (
            (include_withdrawn or not row.withdrawn)
            and row.protocol == protocol
            and row.metric_convention == convention
            and row.train_data == train_data
            and row.test_set == test_set
            and row.model == model
            and row.backbone == backbone
        ):
            return row
    return None
