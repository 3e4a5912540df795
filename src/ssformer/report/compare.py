"""``ssformer compare``: is the difference between two runs (or two sets of seeds) real?

Each side is one or more runs: a run folder (its ``eval_test*.json``) or one evaluation file
written by ``ssformer val``. The sides are compared per test set on the images both scored,
matched by name; images that only one side scored, or that some run of a side did not score,
are named, never silently dropped. B − A: the mean paired difference, its paired percentile
bootstrap interval over the images and, for a per-image metric, the two-sided Wilcoxon
signed-rank p-value of :func:`scipy.stats.wilcoxon` with its defaults (on the per-image means
across a side's seeds); a pooled metric (``mIoU_2cls``/``mDice_2cls``) is compared by the
paired bootstrap alone. See :mod:`ssformer.report.statistics`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssformer.errors import ConfigError
from ssformer.report.image_scores import CONFUSION_KEY, align, image_data
from ssformer.report.statistics import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    POOLED_KEYS,
    PairedResult,
    paired_comparison,
)

__all__ = ["DEFAULT_METRICS", "EvalFile", "PairedOutcome", "compare_sides", "read_side"]

DEFAULT_METRICS: tuple[str, ...] = ("mDice", "Dice@0.5")
"""Without ``--metric``: the first of these that every run's rows hold."""


@dataclass(frozen=True)
class EvalFile:
    """One evaluation file: its test set, MSF flag and per-image rows."""

    path: Path
    test_set: str
    msf: bool
    rows: list[dict[str, Any]]

    @property
    def key(self) -> tuple[str, bool]:
        return (self.test_set, self.msf)


def read_eval_file(path: Path) -> EvalFile:
    """Read an ``eval_*.json`` of ``ssformer val``; a clear error for anything else."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"{path}: not a readable evaluation file ({type(error).__name__}: {error}); give a "
            "run folder or an eval_*.json written by `ssformer val --cfg FILE`"
        ) from error
    rows = data.get("per_image") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ConfigError(
            f"{path} has no per-image rows ('per_image'); evaluate the weights again with "
            "`ssformer val --cfg FILE` (it writes them)"
        )
    return EvalFile(
        path=path,
        test_set=str(data.get("dataset") or "unknown"),
        msf=bool(data.get("msf")),
        rows=[row for row in rows if isinstance(row, dict)],
    )


def read_side(paths: Sequence[Path]) -> list[dict[tuple[str, bool], EvalFile]]:
    """One ``{(test set, msf): EvalFile}`` per run of a side: a run folder's test evaluations
    (``eval_test*.json``; an export's ``<stem>_<runtime>_eval_test.json`` is given as a file),
    or one evaluation file."""
    side = []
    for path in paths:
        if path.is_file():
            found = [read_eval_file(path)]
        elif path.is_dir():
            files = sorted(path.glob("eval_test*.json"))  # torch's; an export's: give the file
            if not files:
                raise ConfigError(
                    f"{path} holds no eval_test*.json: run `ssformer val --cfg {path / 'config.yaml'}` "
                    "on it first"
                )
            found = [read_eval_file(file) for file in files]
        else:
            raise ConfigError(f"{path} does not exist; give run folders or eval_*.json files")
        evals: dict[tuple[str, bool], EvalFile] = {}
        for evaluation in found:
            if evaluation.key in evals:
                raise ConfigError(
                    f"{path} holds two evaluations of {evaluation.test_set} "
                    f"({evals[evaluation.key].path.name}, {evaluation.path.name}); give the "
                    "eval_*.json file to compare instead of the folder"
                )
            evals[evaluation.key] = evaluation
        side.append(evals)
    return side


@dataclass
class PairedOutcome:
    """The comparison on one test set, with the images left out and why."""

    test_set: str
    msf: bool
    metric: str
    result: PairedResult
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    not_in_every_run: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "test_set": self.test_set,
            "msf": self.msf,
            "metric": self.metric,
            "n": self.result.n,
            "mean_difference": self.result.mean_difference,
            "ci95": list(self.result.ci95),
            "p_value": self.result.p_value,
            "distinguishable": self.result.distinguishable,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "not_in_every_run": self.not_in_every_run,
        }

    def verdict(self) -> str:
        """One line in words: the difference, its interval, p and whether it is noise."""
        r = self.result
        low, high = r.ci95
        if r.p_value is not None:
            p_text = f"Wilcoxon p = {r.p_value:.3g}"
        elif self.metric in POOLED_KEYS:
            p_text = "paired bootstrap only (a pooled metric has no per-image values to rank)"
        else:
            p_text = "Wilcoxon p = n/a (every paired difference is zero)"
        excludes = low > 0.0 or high < 0.0
        if r.distinguishable:
            words = f"distinguishable from noise at n = {r.n} (the interval excludes 0)"
        elif excludes:
            words = f"not clearly distinguishable from noise at n = {r.n} (the interval "
            words += "excludes 0 but p >= 0.05)"
        else:
            words = f"not distinguishable from noise at n = {r.n} (the interval includes 0)"
        msf = " + MSF" if self.msf else ""
        return (
            f"{self.test_set}{msf} {self.metric}: B - A = {r.mean_difference:+.4g}, 95 % CI "
            f"[{low:+.4g}, {high:+.4g}], {p_text}, n = {r.n} images: {words}"
        )


def choose_metric(evals: Sequence[EvalFile], metric: str | None) -> str:
    """``metric``, checked against the rows; without one, the first of
    :data:`DEFAULT_METRICS` that every evaluation's rows hold."""
    wanted = CONFUSION_KEY if metric in POOLED_KEYS else metric
    have = [set().union(*(row.keys() for row in e.rows)) for e in evals]
    if metric is not None:
        lacking = [e.path for e, keys in zip(evals, have, strict=True) if wanted not in keys]
        if lacking:
            keys = sorted(k for k in have[0] if k != "name")
            raise ConfigError(
                f"{lacking[0]} has no per-image {wanted!r}; its rows hold {', '.join(keys)} "
                f"(evaluate again with `ssformer val --cfg FILE --metrics {metric}`)"
            )
        return metric
    for candidate in DEFAULT_METRICS:
        if all(candidate in keys for keys in have):
            return candidate
    raise ConfigError(
        f"{evals[0].path}: no per-image {' or '.join(DEFAULT_METRICS)} in every run: name one "
        "with --metric"
    )


def _compare_one(
    a: list[EvalFile], b: list[EvalFile], metric: str | None, resamples: int, seed: int
) -> PairedOutcome:
    key = choose_metric(a + b, metric)
    tables_a = [image_data(e.rows, key) for e in a]
    tables_b = [image_data(e.rows, key) for e in b]
    names_a, names_b = set().union(*tables_a), set().union(*tables_b)
    aligned = align(tables_a + tables_b)
    test_set, msf = a[0].key
    if not aligned.names:
        raise ConfigError(
            f"{test_set}: the runs share no scored image (A: {a[0].path}, B: {b[0].path}); "
            "compare evaluations of the same test images"
        )
    arrays = aligned.arrays
    result = paired_comparison(arrays[: len(a)], arrays[len(a) :], key, resamples, seed)
    return PairedOutcome(
        test_set=test_set,
        msf=msf,
        metric=key,
        result=result,
        only_in_a=sorted(names_a - names_b),
        only_in_b=sorted(names_b - names_a),
        not_in_every_run=sorted((names_a & names_b) - set(aligned.names)),
    )


def compare_sides(
    a: Sequence[Path],
    b: Sequence[Path],
    metric: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> list[PairedOutcome]:
    """Compare side ``b`` with side ``a`` on every test set all their runs evaluated."""
    side_a, side_b = read_side(a), read_side(b)
    keys = [key for key in side_a[0] if all(key in run for run in (*side_a, *side_b))]
    if not keys:
        seen = sorted({f"{s}{' + MSF' if m else ''}" for run in side_a + side_b for s, m in run})
        raise ConfigError(
            "no test set was evaluated by every run (found: "
            f"{', '.join(seen)}); evaluate both sides on the same test set"
        )
    return [
        _compare_one(
            [run[key] for run in side_a], [run[key] for run in side_b], metric, resamples, seed
        )
        for key in keys
    ]
