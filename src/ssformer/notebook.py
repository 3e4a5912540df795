"""Small helpers for the Colab notebook: environment check, Google Drive, background jobs.

The notebook's cells stay short and call the package; everything with logic lives here or behind
the ``ssformer`` command line, so that the same steps can be run and tested outside a notebook.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ssformer.errors import ConfigError, SSFormerError

if TYPE_CHECKING:
    from ssformer.config import Config


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def describe_environment() -> str:
    """One paragraph on Python, torch and the accelerator; printed by the notebook's first cell."""
    import torch

    lines = [f"python {sys.version.split()[0]}, torch {torch.__version__}"]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        lines.append(f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB")
        if props.total_memory < 15 * 2**30:
            lines.append(
                "warning: under 16 GiB of GPU memory; lower TRAIN.BATCH_SIZE if it runs out"
            )
    else:
        lines.append("no GPU: everything runs on the CPU, slowly (use SMOKE mode to try the steps)")
    return "\n".join(lines)


def run_cli(*args: str) -> None:
    """Run one ``ssformer`` command in this process; raise if it fails."""
    from ssformer.cli import main

    print("$ ssformer " + " ".join(args), flush=True)
    code = main(list(args))
    if code != 0:
        raise SSFormerError(f"'ssformer {' '.join(args)}' failed with exit code {code}")


def link_to_drive(
    drive_dir: str | Path, folders: Sequence[str] = ("checkpoints", "output")
) -> None:
    """Mount Google Drive (in Colab) and make ``folders`` links into ``drive_dir``.

    An existing local folder that is not already such a link is left as it is (never moved or
    deleted); the notebook then simply keeps that folder local and says so.
    """
    drive_dir = Path(drive_dir)
    if in_colab():
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount("/content/drive")
    for name in folders:
        target = drive_dir / name
        target.mkdir(parents=True, exist_ok=True)
        local = Path(name)
        if local.is_symlink() and local.resolve() == target.resolve():
            continue
        if local.exists() or local.is_symlink():
            print(f"keeping local '{local}' (it exists already); it is not on Drive")
            continue
        local.symlink_to(target, target_is_directory=True)
        print(f"{local} -> {target}")


@dataclass
class BackgroundJob:
    """A command running in the background: its process (``None`` when nothing had to run), its
    console log and where in that log its own lines begin (the log is appended to)."""

    process: subprocess.Popen[bytes] | None
    log: Path
    offset: int = 0


def start_background(args: Sequence[str], log_file: str | Path) -> BackgroundJob:
    """Start ``python -m ssformer ARGS`` in the background (like ``nohup ... &``), logging to a file.

    The log is appended to, so ``tail -f`` on it shows every run; the process outlives the cell.
    """
    log_path = Path(log_file)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "ssformer", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    print(
        f"started pid {process.pid}: ssformer {' '.join(args)}\nlog: {log_path}  (tail -f {log_path})"
    )
    return BackgroundJob(process, log_path, offset)


def follow(job: BackgroundJob, poll_s: float = 1.0) -> int:
    """Print the job's new log lines until it ends (``tail -f`` that stops by itself).

    Only the lines this job wrote are shown, not earlier runs' lines in the same log.
    Interrupting the cell stops following, not the training. Returns the process's exit code and
    raises if it failed, so a failed run stops the notebook.
    """
    process = job.process
    if process is None:
        return 0
    position = job.offset
    try:
        while True:
            done = process.poll() is not None
            if job.log.exists():
                with open(job.log, encoding="utf-8", errors="replace") as log:
                    log.seek(position)
                    chunk = log.read()
                    position = log.tell()
                if chunk:
                    print(chunk, end="", flush=True)
            if done:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        print(f"\nstopped following; pid {process.pid} keeps running (tail -f {job.log})")
        return 0
    if process.returncode != 0:
        raise SSFormerError(
            f"background job failed with exit code {process.returncode}; see {job.log}"
        )
    return 0


def set_args(settings: Sequence[str]) -> list[str]:
    """``["--set", *settings]``, or nothing when there are no settings (a bare ``--set`` is
    refused by the command line)."""
    return ["--set", *settings] if settings else []


def copy_to(files: Sequence[str | Path], target_dir: str | Path) -> list[Path]:
    """Copy files (trained weights) into ``target_dir`` without overwriting: a name that exists
    gets a numbered suffix. Returns the paths written."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source in map(Path, files):
        destination = target / source.name
        counter = 1
        while destination.exists():
            destination = target / f"{source.stem}-{counter}{source.suffix}"
            counter += 1
        partial = destination.with_name(destination.name + ".partial")
        shutil.copy2(source, partial)
        os.replace(partial, destination)
        written.append(destination)
        print(f"{source} -> {destination}")
    return written


# ----------------------------------------------------------------------------- one experiment


def dataset_to_download(config: Config) -> str | None:
    """The ``ssformer download data`` name of the config's ``DATASET.ROOT`` (``data/Kvasir-SEG``
    -> ``kvasir-seg``), or ``None`` for data of one's own."""
    from ssformer.data.download import DOWNLOADS

    root = Path(config.dataset.root)
    folders = {download.folder: name for name, download in DOWNLOADS.items()}
    return next((folders[p.name] for p in (root, *root.parents) if p.name in folders), None)


def weights_to_download(config: Config) -> list[str]:
    """The ``ssformer download weights`` names of the files the config loads (its
    ``MODEL.PRETRAINED``), nothing more."""
    from ssformer.models.zoo import WEIGHTS

    if not config.model.pretrained:
        return []
    wanted = Path(config.model.pretrained).name
    return [name for name, source in WEIGHTS.items() if source.filename == wanted]


def fetch_dataset(name: str, drive_dir: str | Path | None = None) -> None:
    """``ssformer download data NAME`` onto the local disk (fast to read every epoch), with
    its archive kept on Drive: an archive saved there by an earlier runtime is used instead of
    downloading again, and a new one is copied there."""
    from ssformer.data.download import DOWNLOADS

    archive = Path("data") / DOWNLOADS[name].archive
    kept = Path(drive_dir) / "archives" / archive.name if drive_dir else None
    if kept is not None and kept.is_file() and not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        copy_to([kept], archive.parent)
    run_cli("download", "data", name, "--keep-archive")
    if kept is not None and archive.is_file() and not kept.exists():
        copy_to([archive], kept.parent)


@dataclass(frozen=True)
class PreviousRun:
    """A run of the experiment trained with the same settings: its folder and epochs done."""

    folder: Path
    epochs: int


def previous_run(config: Config) -> PreviousRun | None:
    """The newest run of this model, backbone and data set trained with the same config (every
    key that changes the result; the number of epochs, device and folders may differ), or
    ``None``. Runs made with other settings are not this experiment's: they are left alone."""
    from ssformer.engine.resume_rules import check_resumable
    from ssformer.engine.training_state import load_training_state
    from ssformer.run_files import LAST, resumable_runs

    for run in reversed(resumable_runs(config.experiment_dir)):
        state = load_training_state(run / LAST)
        try:
            check_resumable(state.get("config") or {}, config, run)
        except ConfigError:
            continue
        return PreviousRun(run, int(state["epoch"]))
    return None


def train_in_background(config_name: str, config: Config, settings: Sequence[str]) -> BackgroundJob:
    """Start the training of ``config`` in the background, resume it after a disconnect, or do
    nothing when a run with the same settings has finished; returns the job to follow."""
    log = Path(config.save_dir) / "notebook" / f"{config.run_name}.out"
    previous = previous_run(config)
    if previous is not None and previous.epochs >= config.train.epochs:
        print(
            f"{previous.folder} is finished ({previous.epochs} of {config.train.epochs} epochs, "
            "same settings): not training again. To train another run, change the settings or "
            "move that folder elsewhere."
        )
        return BackgroundJob(None, log)
    args = ["train", "--cfg", config_name, "--no-progress", *set_args(settings)]
    if previous is not None:
        print(f"resuming {previous.folder} (cut off after epoch {previous.epochs})")
        args += ["--resume", str(previous.folder)]
    return start_background(args, log)


def write_report(config: Config) -> Path:
    """``ssformer report`` of the experiment's runs into a new folder
    ``SAVE_DIR/report/<YYYYmmdd-HHMMSS>`` (an earlier report is kept); returns that folder."""
    out = Path(config.save_dir) / "report" / time.strftime("%Y%m%d-%H%M%S")
    run_cli("report", config.save_dir, "--out", str(out))
    return out


def show_report(folder: str | Path) -> list[Path]:
    """Display the report's results table, training curves and prediction grids in the
    notebook; returns the images shown."""
    from IPython.display import Image, display

    folder = Path(folder)
    images = [
        folder / "results.png",
        *sorted(folder.glob("curves-*.png")),
        *sorted(folder.glob("predictions-*.png")),
    ]
    shown = [image for image in images if image.is_file()]
    for image in shown:
        print(image)
        display(Image(filename=str(image)))
    return shown
