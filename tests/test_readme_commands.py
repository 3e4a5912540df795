"""Every command the README shows runs as written in a fresh clone, or is named here as not run
and why. Each ``ssformer`` line parses; every file it names that ships with the repository exists;
a redirect's folder exists (or the line makes it); the cheap lines run for real on real frames."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from realdata import CVC_STEMS, KVASIR_STEMS, real_subset

from ssformer.cli import build_parser

REPO = Path(__file__).resolve().parents[1]

NOT_RUN = {
    "make demo": "the whole demo (minutes; tests/test_demo.py runs its steps)",
    "make test": "this test suite itself",
    "pip install -e .": "installs into the environment running the tests",
    "ssformer download weights all": "needs Google Drive and the Hugging Face Hub",
    "ssformer download data kvasir-seg": "needs Simula's server (tests/test_notebook.py serves "
    "the real archive over loopback)",
    "ssformer download data cvc-clinicdb": "needs Kaggle credentials",
    "tail -f output/logs_txt/Kvasir.log": "follows a log forever",
    "ssformer sweep --cfg configs/cvc-clinicdb-auto.yaml": "the study's grid (GPU-days)",
    "ssformer report output --png results.png": "needs finished runs (tests/test_report.py)",
    "ssformer export --weights best": "needs trained weights (tests/test_export.py runs it)",
    "ssformer predict --weights best": "needs trained weights (tests/test_predict.py runs it)",
    "ssformer val --cfg configs/kvasir-seg.yaml": "needs trained weights (tests/test_evaluate.py)",
    "ssformer bench SSFormer-S": "minutes of timing (tests/test_benchmark.py runs a small one)",
    "mkdir -p output && nohup ssformer train --cfg configs/kvasir-seg.yaml": "200 epochs on a "
    "GPU; its redirect's folder is checked here",
}
"""README lines not run here (prefixes), with the reason. A new line must be run or added."""

RUN_ON_REAL_FRAMES = ("ssformer split data/Kvasir-SEG", "ssformer split data/CVC-ClinicDB")


def readme_commands() -> list[str]:
    """The command lines of the README's ``bash`` blocks, comments stripped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command:
                lines.append(command)
    return lines


def _parts(line: str) -> list[list[str]]:
    """The simple commands of a line (``a && b``), redirections and ``&`` removed."""
    commands = []
    for part in re.split(r"&&|;", line):
        words = shlex.split(part.replace("2>&1", "").rstrip(" &"))
        kept, skip = [], False
        for word in words:
            if skip:
                skip = False
            elif word in (">", ">>"):
                skip = True
            else:
                kept.append(word)
        commands.append(kept)
    return commands


def test_every_readme_command_is_run_or_named() -> None:
    unknown = [
        line
        for line in readme_commands()
        if line not in RUN_ON_REAL_FRAMES and not any(line.startswith(prefix) for prefix in NOT_RUN)
    ]
    assert not unknown, f"README commands neither run nor named in NOT_RUN: {unknown}"


def test_every_ssformer_line_parses_and_its_shipped_files_exist() -> None:
    parser = build_parser()
    for line in readme_commands():
        for words in _parts(line):
            words = words[1:] if words[:1] == ["nohup"] else words
            if words[:1] != ["ssformer"]:
                continue
            try:
                parser.parse_args(words[1:])
            except SystemExit:
                pytest.fail(f"README line does not parse: {line}")
            for word in words:
                if word.startswith("configs/"):
                    assert (REPO / word).is_file(), f"{line}: {word} does not exist"


def test_redirect_folders_exist_in_a_fresh_clone() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {str(Path(p).parent) for p in tracked}
    for line in readme_commands():
        for target in re.findall(r">\s*([^\s&]+)", line.replace("2>&1", "")):
            folder = str(Path(target).parent)
            made = re.search(rf"mkdir -p [^&;]*\b{re.escape(folder)}\b", line)
            assert folder == "." or folder in folders or made, (
                f"{line}: {folder}/ does not exist in a fresh clone and the line does not make it"
            )


@pytest.mark.slow
def test_the_split_lines_run_as_written_on_real_frames(tmp_path: Path) -> None:
    real_subset("Kvasir-SEG", KVASIR_STEMS, tmp_path / "data" / "Kvasir-SEG")
    real_subset("CVC-ClinicDB", CVC_STEMS, tmp_path / "data" / "CVC-ClinicDB")
    for line in RUN_ON_REAL_FRAMES:
        assert line in readme_commands()
        words = shlex.split(line)
        result = subprocess.run(
            [sys.executable, "-m", "ssformer", *words[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "wrote train/val/test" in result.stdout
        assert (tmp_path / words[2] / "split.json").is_file()
