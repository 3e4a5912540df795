"""The official repository's former README table, withdrawn by its authors (Qiming-Huang/ssformer
issue 7, removed 2022-12-01): its rows stay in published-results.csv labelled ``withdrawn`` and
are never the default comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssformer.errors import ConfigError
from ssformer.report.published_conventions import (
    SOURCE_NAMES,
    find_published,
    load_published,
    reference_path,
    withdrawn_note,
)


def test_only_the_official_repo_table_is_withdrawn() -> None:
    published = load_published()
    withdrawn = {row.source for row in published if row.withdrawn}
    assert withdrawn == {"ssformer-official-repo"}
    assert sum(row.withdrawn for row in published) == 10  # 2 models x 5 PraNet test sets
    assert all(row.status == "published" for row in published if not row.withdrawn)
    label = SOURCE_NAMES["ssformer-official-repo"]
    assert "WITHDRAWN" in label and "issue 7" in label and "2022-12-01" in label


def test_every_withdrawn_row_is_found_only_when_asked() -> None:
    published = load_published()
    for row in (r for r in published if r.withdrawn):
        keys = {
            "protocol": row.protocol,
            "convention": row.metric_convention,
            "train_data": row.train_data,
            "test_set": row.test_set,
            "model": row.model,
            "backbone": row.backbone,
        }
        assert find_published(published, **keys) is None
        assert find_published(published, **keys, include_withdrawn=True) is row
    assert "Not compared" in withdrawn_note(published, included=False)
    assert "labelled *withdrawn*" in withdrawn_note(published, included=True)
    assert withdrawn_note([r for r in published if not r.withdrawn], included=False) == ""


def test_an_unknown_status_is_refused_naming_the_line(tmp_path: Path) -> None:
    lines = reference_path("published-results.csv").read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",retracted"
    bad = tmp_path / "published.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"published.csv:4: status 'retracted'"):
        load_published(bad)
