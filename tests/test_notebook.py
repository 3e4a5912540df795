"""The Colab notebook runs end to end, headless, in SMOKE mode (synthetic data, CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "Reproduction_SFF.ipynb"


def _with_parameters(notebook: nbformat.NotebookNode, **values: object) -> None:
    """Insert a cell after the one tagged ``parameters`` (what papermill does)."""
    index = next(
        i
        for i, cell in enumerate(notebook.cells)
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    )
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, cell)


def test_cells_are_short_and_call_the_package() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code)
    for cell in code:
        assert len(cell.source.splitlines()) <= 16, cell.source


@pytest.mark.slow
def test_notebook_runs_headless_in_smoke_mode(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    _with_parameters(notebook, SMOKE=True, USE_DRIVE=False)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    )
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    outputs = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "ssformer split" in outputs and "ssformer val" in outputs
    assert "run finished" in outputs  # the background training's log was followed
    assert list((tmp_path / "output" / "smoke").glob("report-*/results.png"))
    assert list((tmp_path / "output" / "smoke").glob("*/*/best.pth"))


def _kill_training_in(folder: Path) -> bool:
    """SIGKILL the background ``ssformer train`` started from ``folder`` (a Colab disconnect
    takes every process of the runtime with it)."""
    import signal

    killed = False
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = (proc / "cwd").resolve()
        except OSError:
            continue
        if b"ssformer" in cmdline and b"train" in cmdline and cwd == folder.resolve():
            os.kill(int(proc.name), signal.SIGKILL)
            killed = True
    return killed


@pytest.mark.slow
def test_notebook_resumes_the_run_after_a_disconnect(tmp_path: Path) -> None:
    import threading
    import time

    from nbclient.exceptions import CellExecutionError

    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")]
    )
    parameters = {"SMOKE": True, "USE_DRIVE": False, "OVERRIDES": ["TRAIN.EPOCHS=3"]}

    def execute() -> nbformat.NotebookNode:
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        _with_parameters(notebook, **parameters)
        resources = {"metadata": {"path": tmp_path}}
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources=resources).execute()
        return notebook

    def disconnect_after_the_first_epoch() -> None:
        deadline = time.monotonic() + 500
        while time.monotonic() < deadline:
            started = list((tmp_path / "output" / "smoke").glob("*/*/last.pth"))
            if started and _kill_training_in(tmp_path):
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=disconnect_after_the_first_epoch)
    watcher.start()
    with pytest.raises(CellExecutionError, match="background job failed"):
        execute()  # the training cell fails when its job dies: the notebook stops there
    watcher.join()
    (run,) = (tmp_path / "output" / "smoke").glob("*/*/last.pth")

    notebook = execute()  # run top to bottom again, as after a reconnect
    outputs = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert f"resuming {run.parent.relative_to(tmp_path)}" in outputs and "resumed from" in outputs
    assert [p.parent for p in (tmp_path / "output" / "smoke").glob("*/*/last.pth")] == [run.parent]
    assert "run finished" in outputs
