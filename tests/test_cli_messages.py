"""The suite-wide check of ``conftest.py`` (commands quoted in error messages parse) can fail."""

from __future__ import annotations

from conftest import unparsable_commands


def test_quoted_commands_are_checked_by_the_cli_parser() -> None:
    assert unparsable_commands(["run `ssformer download weights mit-b9` first"])
    assert unparsable_commands(["see `ssformer download weights ...`"])
    assert unparsable_commands(["use `ssformer frobnicate`"])
    assert not unparsable_commands(
        [
            "run `ssformer download weights MiT-B1` first",
            "split it: `ssformer split data/Kvasir-SEG`",
            "see `ssformer sweep --cfg cvc-clinicdb-auto`",
        ]
    )
