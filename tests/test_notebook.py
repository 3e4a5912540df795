"""The Colab notebook runs end to end, headless: in SMOKE mode (synthetic data, CPU) and on its
real path as it ships (``SMOKE = False``, ``OVERRIDES = []``, no Drive) on the real Kvasir-SEG
served over loopback HTTP as Simula serves it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import nbformat
import pytest
from helpers_http import FileRoute, LoopbackServer
from nbclient import NotebookClient
from realdata import real_data_root

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
    assert list((tmp_path / "output" / "smoke" / "report").glob("*/results.png"))
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

    watcher = threading.Thread(target=disconnect_after_the_first_epoch, daemon=True)
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


def _outputs(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def _kvasir_zip_as_simula_ships_it(kvasir: Path) -> bytes:
    """``kvasir-seg.zip``: the top folder ``Kvasir-SEG/`` with ``images/``, ``masks/`` and
    ``kavsir_bboxes.json`` (the files stored, as JPEGs do not compress)."""
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        files = [*sorted(kvasir.glob("images/*.jpg")), *sorted(kvasir.glob("masks/*.jpg"))]
        for path in [*files, kvasir / "kavsir_bboxes.json"]:
            archive.write(path, f"Kvasir-SEG/{path.relative_to(kvasir)}")
    return buffer.getvalue()


TINY_EXPERIMENT = """# MiT-B0 from scratch at 64 px, two epochs: the notebook's real path at test size
DEVICE: cpu
SAVE_DIR: output
SEED: 7
MODEL: {NAME: SSFormer, BACKBONE: MiT-B0, PRETRAINED: null}
DATASET: {NAME: Kvasir, ROOT: data/Kvasir-SEG}
TRAIN: {IMAGE_SIZE: [64, 64], BATCH_SIZE: 16, EPOCHS: 2, AMP: false}
EVAL: {IMAGE_SIZE: [64, 64], MODEL_PATH: output/SSFormer_MiT-B0_Kvasir.pth}
TEST: {IMAGE_SIZE: [64, 64]}
"""


@pytest.mark.slow
def test_notebook_real_path_on_real_kvasir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads the real Kvasir-SEG (1000 pairs) over loopback HTTP, splits, checks, trains,
    evaluates and reports with the notebook's shipped parameters, an experiment file of our
    own as ``EXPERIMENT``. A disconnect during epoch 2 is resumed; a third run trains nothing."""
    import threading
    import time

    from nbclient.exceptions import CellExecutionError

    kvasir = real_data_root() / "Kvasir-SEG"
    (tmp_path / "tiny-kvasir.yaml").write_text(TINY_EXPERIMENT)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
    )

    def execute() -> nbformat.NotebookNode:
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        _with_parameters(notebook, EXPERIMENT="tiny-kvasir.yaml")
        resources = {"metadata": {"path": tmp_path}}
        NotebookClient(notebook, timeout=900, kernel_name="python3", resources=resources).execute()
        return notebook

    def disconnect_during_the_second_epoch() -> None:
        deadline = time.monotonic() + 800
        while time.monotonic() < deadline:
            if list((tmp_path / "output").glob("*/*/last.pth")) and _kill_training_in(tmp_path):
                return
            time.sleep(0.2)

    with LoopbackServer(max_requests=5) as server:
        server.routes["/kvasir-seg.zip"] = FileRoute(_kvasir_zip_as_simula_ships_it(kvasir))
        monkeypatch.setenv("SSFORMER_KVASIR_URL", server.url("/kvasir-seg.zip"))
        watcher = threading.Thread(target=disconnect_during_the_second_epoch, daemon=True)
        watcher.start()
        with pytest.raises(CellExecutionError, match="background job failed"):
            execute()
        watcher.join()
    assert len(list((tmp_path / "data" / "Kvasir-SEG" / "images").iterdir())) == 1000
    (last,) = (tmp_path / "output").glob("*/*/last.pth")

    resumed = _outputs(execute())  # after a reconnect: top to bottom again
    run = last.parent.relative_to(tmp_path)
    assert f"resuming {run} (cut off after epoch 1)" in resumed and "resumed from" in resumed
    assert (
        "run finished" in resumed and "Kvasir-SEG: data/Kvasir-SEG is already complete" in resumed
    )
    assert resumed.count("starting run") == 0  # the resumed run's lines only, not the first start's
    assert "ssformer val" in resumed
    report = sorted((tmp_path / "output" / "report").iterdir())[-1]
    assert (report / "results.png").is_file()
    assert list(report.glob("curves-*.png")) and list(report.glob("predictions-*.png"))
    assert "curves-" in resumed and "predictions-" in resumed  # shown by the notebook

    again = _outputs(execute())  # a third time: the run is finished, nothing is trained
    assert f"{run} is finished (2 of 2 epochs, same settings): not training again" in again
    assert "started pid" not in again and "ssformer val" in again
    assert [p.parent for p in (tmp_path / "output").glob("*/*/last.pth")] == [last.parent]
    assert len(sorted((tmp_path / "output" / "report").iterdir())) == 2  # the first one kept
