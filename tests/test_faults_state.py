"""Fault injection: remembered state (sweep ledgers, splits, caches, outputs) is checked against
what it was made from, never trusted; inputs that cannot be what they seem are named.

Each case ends in correct handling or a clear refusal (exit 2) that names the file, key or value
and the fix; the user's files are byte-identical afterwards (sha256 snapshots).
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssformer.cli import main
from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.sweep import plan_sweep, read_ledger

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def tiny(root: Path, save_dir: Path, *extra: str) -> list[str]:
    """``--set`` values of a seconds-long CPU run of SegFormer MiT-B0 on ``root``."""
    return [
        "DEVICE=cpu",
        f"SAVE_DIR={save_dir}",
        f"DATASET.ROOT={root}",
        "MODEL.NAME=SegFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "TRAIN.IMAGE_SIZE=[32,32]",
        "EVAL.IMAGE_SIZE=[32,32]",
        "TRAIN.EPOCHS=1",
        "TRAIN.BATCH_SIZE=4",
        "TRAIN.WORKERS=0",
        *extra,
    ]


def cli_subprocess(
    args: list[str], file_size_limit: int | None = None
) -> subprocess.CompletedProcess:
    """The CLI in a child process; with ``file_size_limit`` every larger write fails with
    EFBIG, as on a full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",  # a busy shared machine: one thread beats many fighting
    }
    return subprocess.run(
        [sys.executable, "-m", "ssformer", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        preexec_fn=limit if file_size_limit else None,
    )


@pytest.fixture(scope="module")
def split_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("state-data")
    generate_synthetic_dataset(base / "synth", n=12, size=(40, 48), seed=5, size_jitter=0.2)
    return split_dataset(base / "synth", base / "split", (0.67, 0.17, 0.16), 1337).output


# ----------------------------------------------------------------------------- sweep ledgers


@pytest.mark.slow
def test_sweep_trains_an_entry_again_when_its_settings_changed(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = tmp_path / "output"
    sweep = ["sweep", "--cfg", str(KVASIR_CFG), "--no-progress", "--set"]
    assert main([*sweep, *tiny(split_root, save_dir)]) == 0
    assert "1 trained, 0 already finished" in capsys.readouterr().out
    (entry,) = plan_sweep([KVASIR_CFG], tiny(split_root, save_dir))
    first_run = Path(read_ledger(entry.ledger_path)["run_dir"])
    first = snapshot(first_run)

    # unchanged (other workers and device only): skipped, and the dry run says so
    same = tiny(split_root, save_dir, "TRAIN.WORKERS=1")
    assert main([*sweep, *same, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "finished before (1 ep), will be skipped" in out
    assert main([*sweep, *same]) == 0
    assert "0 trained, 1 already finished" in capsys.readouterr().out

    # other epochs and learning rate: the dry run names both, the sweep trains a new run
    changed = tiny(split_root, save_dir, "TRAIN.EPOCHS=2", "OPTIMIZER.LR=0.001")
    assert main([*sweep, *changed, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "TRAIN.EPOCHS: 1 -> 2" in out and "OPTIMIZER.LR: 0.000149 -> 0.001" in out
    assert "will be trained again" in out and "finished before" not in out
    assert "   2 ep" in out
    # another data root is another entry too
    other_root = tmp_path / "copy"
    shutil.copytree(split_root, other_root)
    assert main([*sweep, *tiny(other_root, save_dir), "--dry-run"]) == 0
    assert f"DATASET.ROOT: '{split_root}' -> '{other_root}'" in capsys.readouterr().out

    lr = tiny(split_root, save_dir, "OPTIMIZER.LR=0.001")
    assert main([*sweep, *lr]) == 0
    out = capsys.readouterr().out
    assert "1 trained, 0 already finished" in out and "OPTIMIZER.LR: 0.000149 -> 0.001" in out
    second_run = Path(read_ledger(entry.ledger_path)["run_dir"])
    assert second_run != first_run and snapshot(first_run) == first  # the earlier run is kept
    assert read_ledger(entry.ledger_path)["settings"]["OPTIMIZER.LR"] == 0.001
    assert main([*sweep, *lr, "--dry-run"]) == 0
    assert "finished before (1 ep), will be skipped" in capsys.readouterr().out


# ----------------------------------------------------------------------------- splits


def _pairs(base: Path, n: int = 10) -> Path:
    generate_synthetic_dataset(base, n=n, size=(40, 48), seed=11)
    return base


def test_a_frame_stored_twice_is_refused_by_split_naming_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _pairs(tmp_path / "data")
    first = sorted((root / "images").iterdir())[0]
    Image.open(first).save(first.with_suffix(".jpg" if first.suffix == ".png" else ".png"))
    before = snapshot(root)
    for output in (tmp_path / "split", root):  # elsewhere and in place
        assert main(["split", str(root), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert f"{first.stem}.jpg and {first.stem}.png" in err and "two splits" in err
        assert "Traceback" not in err
    assert not (tmp_path / "split").exists() and snapshot(root) == before


def _replace(path: Path, pixels: np.ndarray) -> None:
    """Save ``pixels`` to a new file and rename it over ``path`` (a new inode, as editors do)."""
    fresh = path.with_name(f"new-{path.name}")
    Image.fromarray(pixels).save(fresh)
    fresh.replace(path)


@pytest.mark.parametrize("how", ["replaced", "edited-in-place"])
def test_a_mask_corrected_after_the_split_is_named_and_placed_again(
    tmp_path: Path, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _pairs(tmp_path / "data")
    output = tmp_path / "split"
    assert main(["split", str(root), "--output", str(output)]) == 0
    capsys.readouterr()
    mask = sorted((root / "masks").iterdir())[3]
    corrected = np.zeros((40, 48), np.uint8)
    corrected[5:20, 5:20] = 255
    if how == "replaced":
        _replace(mask, corrected)
    else:  # the same inode: the split's hard link changes with it
        Image.fromarray(corrected).save(mask)
    (placed,) = output.glob(f"*/masks/{mask.name}")

    assert main(["split", str(root), "--output", str(output), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"changed in the source since the split (SHA-256 differs): {mask}" in err
    save_dir = tmp_path / "output"
    code = main(
        ["train", "--cfg", str(KVASIR_CFG), "--no-progress", "--set", *tiny(output, save_dir)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert str(mask) in err and f"ssformer split SOURCE --output {output}" in err
    assert "Traceback" not in err

    assert main(["split", str(root), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"updated: {mask} changed since the split" in out and "nothing to do" not in out
    assert placed.read_bytes() == mask.read_bytes()
    assert main(["split", str(root), "--output", str(output), "--check"]) == 0
    assert "matches its manifest and the source" in capsys.readouterr().out


def test_pairs_added_after_the_split_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _pairs(tmp_path / "data")
    output = tmp_path / "split"
    assert main(["split", str(root), "--output", str(output)]) == 0
    capsys.readouterr()
    split_before = snapshot(output)
    image = sorted((root / "images").iterdir())[0]
    (mask,) = (root / "masks").glob(f"{image.stem}.*")
    shutil.copy(image, root / "images" / f"late{image.suffix}")
    shutil.copy(mask, root / "masks" / "late.png")
    assert main(["split", str(root), "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert f"added to the source after the split: {root / 'images' / f'late{image.suffix}'}" in err
    assert f"added to the source after the split: {root / 'masks' / 'late.png'}" in err
    assert "new --output" in err and "nothing to do" not in err
    assert main(["split", str(root), "--output", str(output), "--check"]) == 1
    assert "late.png" in capsys.readouterr().err
    assert snapshot(output) == split_before


# ----------------------------------------------------------------------------- strict YAML


@pytest.mark.parametrize(
    ("edit", "key", "lines", "where"),
    [
        (("TRAIN:", "TRAIN:\n  EPOCHS        : 20\nTRAIN:"), "TRAIN", (14, 16), "at the top level"),
        (
            ("  LR            : 0.000149", "  LR            : 0.1\n  LR            : 0.000149"),
            "LR",
            (28, 29),
            "in OPTIMIZER",
        ),
    ],
)
def test_a_key_written_twice_is_refused_with_both_lines(
    tmp_path: Path,
    edit: tuple[str, str],
    key: str,
    lines: tuple[int, int],
    where: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "run.yaml"
    text = KVASIR_CFG.read_text()
    assert text.count(edit[0]) == 1
    cfg.write_text(text.replace(edit[0], edit[1]))
    before = cfg.read_bytes()
    save_dir = tmp_path / "output"
    assert main(["train", "--cfg", str(cfg), "--set", f"SAVE_DIR={save_dir}"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}" in err and f"key {key!r} is written twice {where}" in err
    assert f"(lines {lines[0]} and {lines[1]})" in err and "Traceback" not in err
    assert not save_dir.exists() and cfg.read_bytes() == before


# ----------------------------------------------------------------------------- masks


def _disc(shape: tuple[int, int] = (288, 384)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - 140) ** 2 + (xx - 200) ** 2 < 60**2


@pytest.mark.parametrize("quality", [75, 95])
def test_zero_one_masks_saved_as_jpeg_are_read_by_the_lossy_rule(
    tmp_path: Path, quality: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssformer.data.decode import MASK_RULES, decode_mask, read_mask_grey

    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    disc = _disc()
    for i in range(3):
        Image.fromarray(np.full((288, 384, 3), 90 + i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(disc.astype(np.uint8)).save(root / "masks" / f"{i}.jpg", quality=quality)
    path = root / "masks" / "0.jpg"
    assert int(np.asarray(Image.open(path)).max()) == 2  # JPEG made some 1s into 2s
    grey, rule = read_mask_grey(path)
    assert rule == "0/1-lossy" and set(np.unique(grey)) == {0, 255}
    read = decode_mask(path)
    assert (read & disc).sum() / (read | disc).sum() > 0.95  # the polyp, not an empty mask
    before = snapshot(root)
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"note: 3 masks {MASK_RULES['0/1-lossy']}" in out and "empty" not in out
    assert snapshot(root) == before


def _grey_128_masks(root: Path) -> Path:
    """A split data set whose masks hold 0/128: every mask reads as background."""
    for split in ("train", "val", "test"):
        generate_synthetic_dataset(root / split, n=4, size=(40, 48), seed=3)
        for mask in (root / split / "masks").iterdir():
            grey = np.asarray(Image.open(mask).convert("L"))
            Image.fromarray(np.where(grey > 128, 128, 0).astype(np.uint8)).save(
                mask.with_suffix(".png")
            )
            if mask.suffix != ".png":
                mask.unlink()
    return root


def test_a_data_set_of_empty_masks_is_refused_by_name_at_train_and_val(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssformer.data.check import refuse_empty_masks
    from ssformer.errors import DataError

    root = _grey_128_masks(tmp_path / "data")
    before = snapshot(root)
    assert main(["check-data", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"ERROR {root / 'train' / 'masks'}: 4 of 4 masks are empty" in err
    assert "highest value 128, none above the polyp threshold 128" in err and "0/255" in err
    save_dir = tmp_path / "output"
    code = main(
        ["train", "--cfg", str(KVASIR_CFG), "--no-progress", "--set", *tiny(root, save_dir)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "4 of 4 masks are empty" in err and "synth-0000.png" in err and "Traceback" not in err
    assert not list(save_dir.glob("*/*/config.yaml"))  # no run started
    masks = sorted((root / "test" / "masks").iterdir())
    with pytest.raises(DataError, match=r"4 of 4 masks are empty .*synth-0000\.png"):
        refuse_empty_masks(masks, root / "test" / "masks")
    assert snapshot(root) == before


def test_the_pooled_2_class_metric_is_undefined_not_perfect_without_a_polyp_pixel() -> None:
    from ssformer.engine.evaluate import format_metrics_table
    from ssformer.metrics import SegmentationEvaluator

    evaluator = SegmentationEvaluator(["mIoU_2cls", "mDice_2cls"])
    empty = np.zeros((32, 32), np.int64)
    evaluator.update_pooled(empty, empty)
    with pytest.warns(UserWarning, match="holds no polyp pixel"):
        results = evaluator.compute()
    assert np.isnan(results["mIoU_2cls"]) and np.isnan(results["mDice_2cls"])
    table = format_metrics_table(results)
    assert "mIoU_2cls   undefined" in table and "100.0000" not in table
    evaluator.update_pooled(np.eye(32, dtype=np.int64), np.eye(32, dtype=np.int64))
    assert evaluator.compute()["mIoU_2cls"] == 100.0  # defined again once a polyp pixel exists


# ----------------------------------------------------------------------------- outputs


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained SegFormer MiT-B0 checkpoint (what it predicts does not matter here)."""
    import torch

    from ssformer.models import build_model, save_checkpoint_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "SegFormer_MiT-B0_Kvasir.pth"
    return save_checkpoint_file(path, build_model("SegFormer", "MiT-B0", num_classes=1))


def _video(path: Path, frames: int = 60) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (i * 4) % 256, np.uint8))
    writer.release()
    return path


@pytest.mark.slow
def test_a_full_disk_while_writing_prediction_videos_fails_clearly(
    tmp_path: Path, weights: Path
) -> None:
    clip = _video(tmp_path / "clip.mp4")
    out = tmp_path / "pred"
    args = ["predict", str(clip), "--weights", str(weights), "--out", str(out)]
    args += ["--device", "cpu", "--size", "32"]
    result = cli_subprocess(args, file_size_limit=4096)  # the kernel refuses larger writes
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "results in" not in result.stdout
    assert f"could not write {out / 'clip_mask.mp4'}" in result.stderr
    assert "cannot be opened as a video" in result.stderr or "frames" in result.stderr
    assert "free on" in result.stderr
    assert not list(out.glob("*.mp4")) and not list(out.glob(".*"))  # no broken or temporary file
    # with room to write, the same command writes both videos, each readable with 60 frames
    assert cli_subprocess(args).returncode == 0
    import cv2

    written = sorted(p for p in tmp_path.glob("pred*/*.mp4"))
    assert [p.name for p in written] == ["clip_mask.mp4", "clip_overlay.mp4"]
    for path in written:
        capture = cv2.VideoCapture(str(path))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 60
        capture.release()


@pytest.mark.parametrize(
    ("size", "said"),
    [
        (["0"], "0 is outside 32..4096"),
        (["-5"], "-5 is outside 32..4096"),
        (["100000"], "100000 is outside 32..4096"),
        (["1", "2", "3"], "not 3 numbers"),
    ],
)
def test_a_bad_predict_size_is_refused_by_value(
    tmp_path: Path, weights: Path, size: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "frame.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(image)
    out = tmp_path / "pred"
    args = ["predict", str(image), "--weights", str(weights), "--out", str(out), "--device", "cpu"]
    assert main([*args, "--size", *size]) == 2
    err = capsys.readouterr().err
    assert f"--size {' '.join(size)}: " in err and said in err and "Traceback" not in err
    assert not out.exists()


def test_report_never_replaces_the_users_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssformer.report import build_report

    runs = tmp_path / "runs"
    run = runs / "SegFormer_MiT-B0_Kvasir" / "2026-01-01_00-00-00"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(KVASIR_CFG.read_text())
    (run / "metrics.jsonl").write_text('{"epoch": 1, "val/mIoU_2cls": 50.0}\n')
    out = tmp_path / "report"
    out.mkdir()
    (out / "results.md").write_text("my notes")
    (out / "results.csv").write_text("my,table")
    png = tmp_path / "results.png"
    png.write_bytes(b"my image")
    before = snapshot(tmp_path / "report") | {"png": hashlib.sha256(b"my image").hexdigest()}
    args = ["report", str(runs), "--out", str(out), "--png", str(png), "--no-predictions"]
    assert main([*args, "--skip-model-sizes"]) == 0
    printed = capsys.readouterr().out
    assert f"{out} already holds files; wrote to {tmp_path / 'report-2'} instead" in printed
    assert f"{png} exists; wrote {tmp_path / 'results-2.png'}" in printed
    after = snapshot(tmp_path / "report") | {"png": hashlib.sha256(png.read_bytes()).hexdigest()}
    assert after == before
    assert (tmp_path / "report-2" / "results.md").is_file()
    assert (tmp_path / "results-2.png").read_bytes()[:4] == b"\x89PNG"
    build_report([runs], out, png=png, predictions=False, model_sizes=False)  # a third time
    assert (tmp_path / "report-3" / "results.md").is_file() and (
        tmp_path / "results-3.png"
    ).is_file()


# ----------------------------------------------------------------------------- the data cache


@pytest.mark.parametrize("how", ["rewritten-in-place", "renamed-over"])
def test_a_replaced_file_of_the_same_size_and_time_is_never_served_from_the_cache(
    tmp_path: Path, how: str
) -> None:
    """Two real CVC-ClinicDB frames stored as BMP (same byte size); the first is replaced by
    the second with its modification time set back: the cache gives the new pixels."""
    from realdata import CVC_STEMS, real_subset

    from ssformer.data.datasets import PolypDataset

    source = real_subset("CVC-ClinicDB", CVC_STEMS[:2], tmp_path / "real")
    root = tmp_path / "data"
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
        for path in sorted((source / folder).iterdir()):
            Image.open(path).save(root / folder / f"{path.stem}.bmp")
    first, second = sorted((root / "images").iterdir())
    assert first.stat().st_size == second.stat().st_size
    dataset = PolypDataset(root, (64, 64), cache=True)
    old = dataset.resized_pair(0)[0].copy()
    stat = first.stat()
    if how == "rewritten-in-place":
        first.write_bytes(second.read_bytes())
    else:
        shutil.copyfile(second, root / "new.bmp")
        (root / "new.bmp").replace(first)
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and time as before
    assert (first.stat().st_size, first.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    again = PolypDataset(root, (64, 64), cache=True)
    new = again.resized_pair(0)[0]
    assert not np.array_equal(new, old)
    assert np.array_equal(new, again.resized_pair(1)[0])  # the pixels of the file now there
    assert again.cache is not None and again.cache.misses == 2
    assert len(list((root / ".cache").rglob(f"{first.stem}.*.npy"))) == 1  # stale entry gone


# ----------------------------------------------------------------------------- tracebacks


@pytest.mark.slow
def test_a_run_folder_deleted_during_training_stops_clearly_and_is_not_recreated(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ssformer.config import load_config
    from ssformer.engine.train import run_training
    from ssformer.errors import StorageError

    save_dir = tmp_path / "output"
    config = load_config(KVASIR_CFG, tiny(split_root, save_dir, "TRAIN.EPOCHS=2"))
    deleted: list[Path] = []

    def delete_the_run(epoch: int, step: int) -> None:  # the user's `rm -r` mid-epoch
        if not deleted:
            (run,) = save_dir.glob("*/*/config.yaml")
            shutil.rmtree(run.parent)
            deleted.append(run.parent)

    with pytest.raises(StorageError, match="was deleted or moved during training") as caught:
        run_training(config, progress=False, echo=None, on_step=delete_the_run)
    assert str(deleted[0]) in str(caught.value) and "without --resume" in str(caught.value)
    assert not deleted[0].exists()  # not recreated without its config.yaml
    assert "was deleted or moved" in (save_dir / "logs_txt" / "Kvasir.log").read_text()
    # a new run of the same command trains in a folder of its own
    code = main(
        ["train", "--cfg", str(KVASIR_CFG), "--no-progress", "--set", *tiny(split_root, save_dir)]
    )
    assert code == 0 and len(list(save_dir.glob("*/*/config.yaml"))) == 1


def test_a_huge_batch_size_is_refused_at_load_and_leaves_no_run(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = tmp_path / "output"
    args = ["train", "--cfg", str(KVASIR_CFG), "--no-progress", "--set"]
    value = "TRAIN.BATCH_SIZE=99999999999999999999"
    assert main([*args, *tiny(split_root, save_dir, value)]) == 2
    err = capsys.readouterr().err
    assert f"--set {value}" in err and "an integer from 1 to 65536" in err
    assert "Traceback" not in err and not save_dir.exists()


def test_unclear_paths_are_named_for_what_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    for args in (["check-data", str(a_file)], ["split", str(a_file)]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{a_file} is a file, not a folder" in err and "Traceback" not in err
    save_dir = tmp_path / "output"
    train = ["train", "--cfg", str(KVASIR_CFG), "--no-progress", "--set"]
    assert main([*train, *tiny(a_file, save_dir)]) == 2
    assert f"DATASET.ROOT={a_file} is a file, not a folder" in capsys.readouterr().err
    assert main(["train", "--cfg", str(tmp_path), "--set", f"SAVE_DIR={save_dir}"]) == 2
    assert f"--cfg '{tmp_path}' is a folder, not a config file" in capsys.readouterr().err
    image = tmp_path / "frame.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(image)
    args = ["predict", str(image), "--weights", str(tmp_path), "--out", str(tmp_path / "p")]
    assert main(args) == 2
    assert f"weights file {tmp_path} is a folder, not a file" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"


def test_a_key_set_twice_blames_the_set_that_was_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_dir = tmp_path / "output"
    args = ["train", "--cfg", str(KVASIR_CFG), "--set", f"SAVE_DIR={save_dir}"]
    assert main([*args, "TRAIN.EPOCHS=2", "TRAIN.EPOCHS=x"]) == 2
    err = capsys.readouterr().err
    assert "--set TRAIN.EPOCHS=x (over" in err and "TRAIN.EPOCHS=2 (over" not in err


def test_webp_gif_and_sub_folders_are_named_for_what_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _pairs(tmp_path / "data", n=10)
    frame = np.full((40, 48, 3), 90, np.uint8)
    Image.fromarray(frame).save(root / "images" / "late.webp")
    Image.fromarray(frame).save(root / "images" / "late.gif")
    (root / "images" / "more").mkdir()
    Image.fromarray(frame).save(root / "images" / "more" / "x.png")
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "late.webp: a WebP image, which the loaders do not read" in out
    assert "late.gif: a GIF image" in out and "convert it to PNG" in out
    assert f"{root / 'images' / 'more'}: a folder inside images/: its files are not read" in out
    assert main(["split", str(root), "--output", str(tmp_path / "split")]) == 0
    out = capsys.readouterr().out
    assert "late.webp: a WebP image" in out and "left out" in out and "more: a folder" in out


def test_an_export_whose_checkpoint_changed_gets_a_note(tmp_path: Path, weights: Path) -> None:
    """The sidecar's record of the checkpoint an export came from is compared with that file
    (exporting for real takes a minute on a busy CPU; the comparison is what is tested)."""
    import torch

    from ssformer.deploy.runtimes import stale_export_note
    from ssformer.deploy.sidecar import ExportInfo
    from ssformer.io.digest import sha256_file
    from ssformer.models import build_model, save_checkpoint_file

    checkpoint = tmp_path / "best.pth"
    shutil.copyfile(weights, checkpoint)
    info = ExportInfo(
        file_format="onnx",
        precision="fp32",
        model="SegFormer",
        backbone="MiT-B0",
        num_classes=1,
        image_size=(64, 64),
        dynamic={"batch": True, "height": True, "width": True},
        source={"weights": str(checkpoint), "sha256": sha256_file(checkpoint)},
    )
    onnx = tmp_path / "model.onnx"
    assert stale_export_note(onnx, info) is None  # the checkpoint is as it was exported
    torch.manual_seed(1)  # the user trains on and saves other weights under the same name
    save_checkpoint_file(checkpoint, build_model("SegFormer", "MiT-B0", num_classes=1))
    note = stale_export_note(onnx, info)
    assert note is not None
    assert f"note: {onnx} was exported from {checkpoint}, which has changed since" in note
    assert f"`ssformer export --weights {checkpoint} --format onnx`" in note
    checkpoint.unlink()
    assert stale_export_note(onnx, info) is None  # nothing to compare with: no claim made


def test_predict_reads_an_exif_rotated_image_as_training_does_and_says_so(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # a viewer turns it 90 degrees clockwise
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(image, exif=exif)
    out = tmp_path / "pred"
    args = ["predict", str(image), "--weights", str(weights), "--out", str(out)]
    assert main([*args, "--device", "cpu", "--size", "32", "--no-overlay"]) == 0
    printed = capsys.readouterr().out
    assert "note: EXIF orientation 6: segmented as stored, as training and evaluation" in printed
    assert np.asarray(Image.open(out / "rotated_mask.png")).shape == (40, 48)  # as stored


def test_an_interrupted_sweep_entry_is_resumed_only_with_its_own_settings(
    split_root: Path, tmp_path: Path
) -> None:
    """What the sweep decides is under test; the trainer is a stand-in that makes a run folder
    with a last.pth and is interrupted (or finishes)."""
    from ssformer.sweep import entry_state, run_sweep

    save_dir = tmp_path / "output"
    calls: list[Path | None] = []

    class Result:
        def __init__(self, run_dir: Path) -> None:
            self.run_dir, self.best_metric, self.best_metric_name = run_dir, 0.5, "Dice@0.5"

    def trainer(config, *, resume, progress, echo, interrupt=False):
        calls.append(resume)
        run_dir = resume or Path(config.save_dir) / config.run_name / f"run-{len(calls)}"
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "last.pth").write_bytes(b"state")
        if interrupt:
            raise KeyboardInterrupt
        return Result(run_dir)

    plan = plan_sweep([KVASIR_CFG], tiny(split_root, save_dir))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, trainer=lambda c, **k: trainer(c, **k, interrupt=True))
    first_run = save_dir / plan[0].config.run_name / "run-1"
    assert entry_state(plan[0]).action == "resume"

    changed = plan_sweep([KVASIR_CFG], tiny(split_root, save_dir, "OPTIMIZER.LR=0.001"))
    state = entry_state(changed[0])
    assert state.action == "train" and state.changes == ("OPTIMIZER.LR: 0.000149 -> 0.001",)
    assert "running with other settings" in state.describe()
    run_sweep(changed, trainer=trainer)
    assert calls[-1] is None  # trained afresh: never resumed with other settings
    assert (first_run / "last.pth").read_bytes() == b"state"  # the interrupted run is kept
    assert entry_state(changed[0]).action == "skip"
