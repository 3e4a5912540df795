"""Our test numbers beside the published ones, as rows (CSV) and grouped tables (Markdown, PNG).

A :class:`Comparison` is one (run, test set, convention, metric) cell: our value in the
convention's scale, the published value of the same protocol, convention, training data, test
set, model and backbone (or ``None``), and their difference. :func:`build_sections` groups them
like the reproduction study's table: one section per (protocol, convention), rows dataset x
backbone, columns metric x head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssformer.data.layout import PRANET_PROTOCOL
from ssformer.report.published_conventions import (
    CONVENTIONS,
    METRICS,
    SOURCE_NAMES,
    PublishedResult,
    find_published,
)
from ssformer.report.runs import RunRecord
from ssformer.report.seeds import Entry, group_entries

PRIMARY_CONVENTION: dict[str, str] = {
    "split-80-10-10-seed-1337": "pooled-2-class-mean-x100",
    "pranet": "per-image-foreground",
    "per-dataset-in-domain": "per-image-foreground",
}
DEFAULT_CONVENTION = "pooled-2-class-mean-x100"
SYNTHETIC_LABEL = "synthetic (generated, not Kvasir)"
DASH = "—"


@dataclass(frozen=True)
class Comparison:
    """One of our numbers and its published counterpart (same protocol and convention)."""

    run: str
    protocol: str
    train_data: str
    test_set: str
    model: str
    head: str
    backbone: str
    metric: str
    convention: str
    our_key: str
    ours: float | None
    published: PublishedResult | None
    problems: tuple[str, ...] = ()
    msf: bool = False
    sd: float | None = None  # sample standard deviation over the entry's runs (seeds)
    n: int = 1  # runs (seeds) averaged in ``ours``
    ci95: tuple[float, float] | None = None  # bootstrap interval over test images
    seeds: tuple[Any, ...] = ()

    @property
    def published_value(self) -> float | None:
        return None if self.published is None else self.published.values.get(self.metric)

    @property
    def difference(self) -> float | None:
        """ours - published, in the convention's scale; ``None`` if either is missing."""
        published = self.published_value
        if self.ours is None or published is None:
            return None
        return self.ours - published

    @property
    def source(self) -> str:
        """The published number's source; `` (withdrawn)`` added for a withdrawn table."""
        if self.published is None:
            return ""
        return self.published.source + (" (withdrawn)" if self.published.withdrawn else "")


def dataset_label(train_data: str, test_set: str, msf: bool = False) -> str:
    """Row label: ``Kvasir-SEG``, or ``PraNet-TrainDataset → CVC-ColonDB``; synthetic spelled
    out; `` + MSF`` for multi-scale + flip test-time augmentation."""
    train = SYNTHETIC_LABEL if train_data == "synthetic" else train_data
    if test_set in (train_data, "unknown") or test_set == "synthetic":
        label = train
    else:
        label = f"{train} → {test_set}"
    return f"{label} + MSF" if msf else label


CONVENTION_RECIPES: dict[str, tuple[str, ...]] = {
    "pooled-2-class-mean-x100": ("study",),
    "per-image-foreground": ("pranet-toolbox",),
    "pranet-toolbox": ("pranet-toolbox",),
    "official-test-py": ("official", "pranet-toolbox"),
}
"""The evaluation recipes (``EVAL.RECIPE``) whose numbers follow each published convention: the
pipeline its published numbers came from (both ``official`` and ``pranet-toolbox`` compute
``official_*`` from the official test.py's input)."""


def recipe_fits(recipe: str | None, convention: str) -> bool:
    """Whether an evaluation made with ``recipe`` may be compared under ``convention``."""
    return recipe is not None and recipe in CONVENTION_RECIPES.get(convention, ())


def _data_label(run: RunRecord) -> str:
    """The run's data as the tables name it: the published name only when verified."""
    if run.is_synthetic:
        return "synthetic"
    if run.data_is_verified:
        return run.dataset
    if run.verified_data is None:
        return f"{run.dataset} (custom, unverified)"
    return f"{run.dataset} (the data is {run.verified_data})"


def conventions_for(
    run: RunRecord,
    test_set: str,
    published: list[PublishedResult],
    include_withdrawn: bool = False,
) -> list[str]:
    """Conventions to show for a run's test set: the protocol's primary one, plus every
    convention that has a published number for exactly this run (a withdrawn table's only
    with ``include_withdrawn``)."""
    chosen = [PRIMARY_CONVENTION.get(run.protocol, DEFAULT_CONVENTION)]
    for row in published:
        if (
            (include_withdrawn or not row.withdrawn)
            and row.protocol == run.protocol
            and row.train_data == run.dataset
            and row.test_set == test_set
            and row.model == run.model
            and row.backbone == run.backbone
            and row.metric_convention not in chosen
        ):
            chosen.append(row.metric_convention)
    return chosen


def compare_runs(
    runs: list[RunRecord], published: list[PublishedResult], include_withdrawn: bool = False
) -> list[Comparison]:
    """Every (entry, test set, convention, metric) comparison; the runs of one entry across
    seeds (:mod:`ssformer.report.seeds`) give one comparison of their mean, with sd, n and a
    bootstrap interval. Runs without a test evaluation are left out (see
    :func:`unusable_runs`); a withdrawn table only with ``include_withdrawn``."""
    comparisons = []
    for entry in group_entries(runs):
        run, result = entry.run, entry.result
        for convention_name in conventions_for(run, result.test_set, published, include_withdrawn):
            convention = CONVENTIONS[convention_name]
            match = None
            comparable = run.data_is_verified and recipe_fits(result.recipe, convention_name)
            if comparable and not run.is_synthetic:
                match = find_published(
                    published,
                    protocol=run.protocol,
                    convention=convention_name,
                    train_data=run.dataset,
                    test_set=result.test_set,
                    model=run.model,
                    backbone=run.backbone,
                    include_withdrawn=include_withdrawn,
                )
            for metric in METRICS:
                key = convention.our_keys[metric]
                comparisons.append(_comparison(entry, convention_name, key, metric, match))
    return comparisons


def _comparison(
    entry: Entry, convention_name: str, key: str, metric: str, match: PublishedResult | None
) -> Comparison:
    """One cell: the entry's mean of ``key`` (with sd, n and interval) and its published match."""
    run, result = entry.run, entry.result
    scale = CONVENTIONS[convention_name].scale
    value, sd, n = entry.spread(key)
    problems: list[str] = []
    for member, _ in entry.members:
        problems.extend(p for p in member.problems if p not in problems)
    if value is None:
        problems.append(f"{result.path.name} has no {key!r}")
    interval = entry.interval(key) if value is not None else None
    return Comparison(
        run=entry.name,
        protocol=run.protocol,
        train_data=_data_label(run),
        # the split protocol tests on the run's own data: named as it
        test_set=_data_label(run) if result.test_set == run.dataset else result.test_set,
        model=run.model,
        head=run.head,
        backbone=run.backbone,
        metric=metric,
        convention=convention_name,
        our_key=key,
        ours=None if value is None else value * scale,
        published=match,
        problems=tuple(problems),
        msf=result.msf,
        sd=None if sd is None else sd * scale,
        n=max(n, 1),
        ci95=None if interval is None else (interval[0] * scale, interval[1] * scale),
        seeds=tuple(entry.seeds),
    )


def unusable_runs(runs: list[RunRecord]) -> list[RunRecord]:
    """Runs that give no table row (no readable test evaluation)."""
    return [run for run in runs if not run.test_evals()]


@dataclass
class Section:
    """One table: a protocol and a convention; rows dataset x backbone; columns metric x head."""

    protocol: str
    convention: str
    columns: list[tuple[str, str]]  # (head, model), PLD first
    rows: list[tuple[str, str]] = field(default_factory=list)  # (dataset label, backbone)
    cells: dict[tuple[str, str, str, str, str], Comparison] = field(default_factory=dict)
    # key: (dataset label, backbone, head, model, metric)

    @property
    def title(self) -> str:
        return f"protocol {self.protocol} · convention {self.convention}"

    def sources(self) -> list[str]:
        found = {c.published.source for c in self.cells.values() if c.published is not None}
        return [SOURCE_NAMES.get(s, s) for s in sorted(found)]

    def flagged(self, row: tuple[str, str]) -> list[str]:
        problems: list[str] = []
        for (label, backbone, *_), cell in self.cells.items():
            if (label, backbone) == row:
                problems.extend(p for p in cell.problems if p not in problems)
        return problems


def _backbone_order(name: str) -> tuple[str, int, str]:
    family, _, variant = name.partition("-B")
    return (family, int(variant) if variant.isdigit() else 99, name)


TEST_SET_ORDER: tuple[str, ...] = ("Kvasir-SEG", *PRANET_PROTOCOL.test_sets)


def _row_order(row: tuple[str, str]) -> tuple[bool, int, str, str, int, str]:
    """Real data before synthetic; datasets in the PraNet benchmark's order; then backbones."""
    label, backbone = row
    test_set = label.split(" → ")[-1].removesuffix(" + MSF")
    rank = TEST_SET_ORDER.index(test_set) if test_set in TEST_SET_ORDER else len(TEST_SET_ORDER)
    return (label.startswith("synthetic"), rank, label, *_backbone_order(backbone))


def _head_order(column: tuple[str, str]) -> tuple[int, str]:
    head, model = column
    order = {"PLD": 0, "SeD": 1}
    return (order.get(head, 2), model)


def build_sections(comparisons: list[Comparison]) -> list[Section]:
    """Group comparisons into tables; a duplicate (same row and column) gets its own row."""
    sections: dict[tuple[str, str], Section] = {}
    for comparison in comparisons:
        key = (comparison.protocol, comparison.convention)
        section = sections.setdefault(key, Section(*key, columns=[]))
        column = (comparison.head, comparison.model)
        if column not in section.columns:
            section.columns.append(column)
    # second pass: place cells, moving duplicates to a new row named after the run
    for comparison in comparisons:
        section = sections[(comparison.protocol, comparison.convention)]
        label = dataset_label(comparison.train_data, comparison.test_set, comparison.msf)
        backbone = comparison.backbone
        cell_key = (label, backbone, comparison.head, comparison.model, comparison.metric)
        existing = section.cells.get(cell_key)
        if existing is not None and existing.run != comparison.run:
            backbone = f"{comparison.backbone} [{comparison.run}]"
            cell_key = (label, backbone, comparison.head, comparison.model, comparison.metric)
        section.cells[cell_key] = comparison
        if (label, backbone) not in section.rows:
            section.rows.append((label, backbone))
    for section in sections.values():
        section.columns.sort(key=_head_order)
        section.rows.sort(key=_row_order)
    order = {"split-80-10-10-seed-1337": 0, "pranet": 1}
    return sorted(
        sections.values(),
        key=lambda s: (
            order.get(s.protocol, 2),
            s.protocol,
            s.convention != PRIMARY_CONVENTION.get(s.protocol, DEFAULT_CONVENTION),
            s.convention,
        ),
    )


def format_value(value: float | None, convention: str) -> str:
    """A number in its convention's precision: 2 decimals for ×100, 4 for fractions."""
    if value is None:
        return DASH
    return f"{value:.{CONVENTIONS[convention].digits}f}"


def format_difference(value: float | None, convention: str) -> str:
    if value is None:
        return DASH
    return f"{value:+.{CONVENTIONS[convention].digits}f}"


def column_label(head: str, model: str) -> str:
    """``PLD (PLDSegFormer)``: the head family and the exact model."""
    return f"{head} ({model})" if head != model else model
