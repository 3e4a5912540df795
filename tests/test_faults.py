"""Fault injection: bad files, bad values, interrupted and failing writes, concurrent runs.

Each case ends with exit status 2 (1 for ``check-data`` findings) and a message that names the
file, key or path and the fix, or it works correctly; afterwards the user's files (images,
masks, runs, weights, the study-path file) are byte-identical or exist where the message says.
Disk-full is a real failed write: the process runs under a file-size limit (``RLIMIT_FSIZE``),
so the kernel refuses the write as a full disk would.
"""

from __future__ import annotations

import hashlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssformer.cli import main
from ssformer.config import load_config
from ssformer.data.datasets import PolypDataset, find_pairs
from ssformer.data.decode import decode_image, decode_mask, decode_mask_as_stored
from ssformer.data.split import split_dataset
from ssformer.data.synthetic import generate_synthetic_dataset
from ssformer.engine.study_weights import study_path_owner

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"


# ----------------------------------------------------------------------------- helpers


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


def train(root: Path, save_dir: Path, *extra: str, resume: Path | None = None) -> int:
    args = ["train", "--cfg", str(KVASIR_CFG), "--no-progress"]
    if resume is not None:
        args += ["--resume", str(resume)]
    return main([*args, "--set", *tiny(root, save_dir, *extra)])


def only_run(save_dir: Path) -> Path:
    (run,) = sorted(p.parent for p in save_dir.glob("*/*/config.yaml"))
    return run


def cli_subprocess(
    args: list[str], file_size_limit: int | None = None
) -> subprocess.CompletedProcess:
    def limit() -> None:  # in the child: writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
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
    base = tmp_path_factory.mktemp("faults-data")
    generate_synthetic_dataset(base / "synth", n=12, size=(40, 48), seed=5, size_jitter=0.2)
    return split_dataset(base / "synth", base / "split", (0.67, 0.17, 0.16), 1337).output


@pytest.fixture(scope="module")
def trained(split_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAVE_DIR of one finished 1-epoch run (copy it before changing anything)."""
    save_dir = tmp_path_factory.mktemp("faults-runs") / "output"
    assert train(split_root, save_dir) == 0
    return save_dir


def pair_folder(base: Path, n: int = 3, size: tuple[int, int] = (40, 48)) -> Path:
    """A small images/ + masks/ folder with a disc in every mask."""
    generate_synthetic_dataset(base, n=n, size=size, seed=11)
    return base


# ----------------------------------------------------------------------------- images and masks


def test_16_bit_grey_image_is_read_by_its_high_byte_not_clipped(tmp_path: Path) -> None:
    values = (np.arange(40 * 48, dtype=np.uint32).reshape(40, 48) * 31 % 65536).astype(np.uint16)
    path = tmp_path / "x.png"
    Image.fromarray(values).save(path)  # mode I;16
    assert Image.open(path).mode.startswith("I")
    rgb = decode_image(path)
    expected = (values >> 8).astype(np.uint8)
    assert np.array_equal(rgb, np.repeat(expected[..., None], 3, axis=2))
    assert rgb.mean() < 200  # PIL's own convert("RGB") clips this to an almost white image


def _mask_file(tmp_path: Path, kind: str, disc: np.ndarray) -> Path:
    path = tmp_path / f"{kind}.png"
    if kind == "zero-one":
        Image.fromarray(disc.astype(np.uint8)).save(path)
    elif kind == "red-on-black":
        rgb = np.zeros((*disc.shape, 3), np.uint8)
        rgb[disc, 0] = 255
        Image.fromarray(rgb).save(path)
    elif kind == "green-palette":
        img = Image.fromarray(disc.astype(np.uint8), mode="L").convert("P")
        img.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
        img.save(path)
    elif kind == "alpha-only":
        rgba = np.zeros((*disc.shape, 4), np.uint8)
        rgba[..., 3] = np.where(disc, 255, 0)
        Image.fromarray(rgba, mode="RGBA").save(path)
    elif kind == "16-bit":
        Image.fromarray(np.where(disc, 65535, 0).astype(np.uint16)).save(path)
    return path


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("zero-one", "0/1"),
        ("red-on-black", "colour"),
        ("green-palette", "colour"),
        ("alpha-only", "alpha"),
        ("16-bit", "16-bit"),
    ],
)
def test_masks_outside_kvasir_conventions_are_read_by_a_stated_rule(
    tmp_path: Path, kind: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    yy, xx = np.mgrid[:40, :48]
    disc = (yy - 20) ** 2 + (xx - 24) ** 2 < 100
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(root / "images" / "a.jpg")
    _mask_file(root / "masks", kind, disc).rename(root / "masks" / "a.png")
    mask_path = root / "masks" / "a.png"
    assert np.array_equal(decode_mask(mask_path), disc)  # polyp, not background
    assert np.array_equal(decode_mask_as_stored(mask_path) == 255, disc)  # the study's rule too
    before = snapshot(root)
    assert main(["check-data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "note: 1 masks" in out and str(mask_path) in out and "empty mask" not in out
    from ssformer.data.decode import MASK_RULES

    assert MASK_RULES[rule] in out
    item = PolypDataset(root, 32, cache=False)[0]
    assert item["mask"].sum() > 0
    assert snapshot(root) == before


def test_kvasir_grey_jpeg_masks_keep_the_reference_grey(tmp_path: Path) -> None:
    """Grey stored as RGB JPEG (Kvasir-SEG): PIL's convert("L") and channel 0 as stored."""
    yy, xx = np.mgrid[:64, :80]
    grey = np.where((yy - 30) ** 2 + (xx - 40) ** 2 < 300, 255, 0).astype(np.uint8)
    path = tmp_path / "m.jpg"
    Image.fromarray(np.repeat(grey[..., None], 3, axis=2)).save(path, quality=75)
    with Image.open(path) as img:
        reference_l = np.asarray(img.convert("L"))
        reference_r = np.asarray(img)[..., 0]
    assert np.array_equal(decode_mask(path), reference_l > 128)
    assert np.array_equal(decode_mask_as_stored(path), reference_r)


def test_rgba_and_cmyk_images_decode_to_their_colours(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (24, 32, 1), dtype=np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    assert np.array_equal(decode_image(tmp_path / "a.png"), rgb)  # alpha dropped
    smooth = np.repeat(np.repeat(rgb[::4, ::4], 4, axis=0), 4, axis=1)
    Image.fromarray(smooth).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    back = decode_image(tmp_path / "c.jpg").astype(np.int16)
    assert np.abs(back - smooth).mean() < 12


def test_a_32_bit_float_image_is_refused_by_name_and_leaves_no_run(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "data"
    shutil.copytree(split_root, root)
    bad = root / "train" / "images" / "float.tif"
    Image.fromarray(np.full((40, 48), 0.5, np.float32), mode="F").save(bad)
    shutil.copy(
        root / "train" / "masks" / sorted(os.listdir(root / "train" / "masks"))[0],
        root / "train" / "masks" / "float.png",
    )
    before = snapshot(root)
    assert main(["check-data", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"ERROR {bad}" in err and "32-bit" in err
    save_dir = tmp_path / "output"
    assert train(root, save_dir) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "check-data" in err and "Traceback" not in err
    # no run folder; the data set's shared log (the study's logs_txt) keeps the error
    assert sorted(p.name for p in save_dir.iterdir()) == ["logs_txt"]
    assert str(bad) in (save_dir / "logs_txt" / "Kvasir.log").read_text()
    assert snapshot(root) == before


def test_exif_rotation_is_noted_and_the_stored_pixels_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pair_folder(tmp_path / "data", n=2)
    image = sorted((root / "images").iterdir())[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    with Image.open(image) as img:
        stored = img.convert("RGB")
    stored.save(image, exif=exif)
    assert decode_image(image).shape[:2] == (40, 48)  # pixels as stored, as the references
    assert decode_image(image, oriented=True).shape[:2] == (48, 40)
    assert main(["check-data", str(root)]) == 0
    assert "EXIF rotation" in capsys.readouterr().out


def test_non_image_files_are_ignored_the_same_way_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pair_folder(tmp_path / "data", n=10)
    for folder in ("images", "masks"):
        (root / folder / "Thumbs.db").write_bytes(b"\x00" * 64)
    assert main(["check-data", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "not an image file; ignored" in out and "ERROR" not in err + out
    assert main(["split", str(root), "--output", str(tmp_path / "split")]) == 0
    out = capsys.readouterr().out
    assert "Thumbs.db: not an image file; left out" in out
    counts = [len(find_pairs(tmp_path / "split" / s)) for s in ("train", "val", "test")]
    assert sum(counts) == len(find_pairs(root)) == 10


def test_a_truncated_jpeg_is_refused_by_predict_as_by_check_data(
    tmp_path: Path, trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 48, 3), 120, np.uint8)).save(buffer, "JPEG")
    (folder / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    weights = next(trained.glob("*.pth"))
    out_dir = tmp_path / "pred"
    code = main(
        [
            "predict",
            str(folder),
            "--weights",
            str(weights),
            "--out",
            str(out_dir),
            "--device",
            "cpu",
            "--size",
            "32",
            "32",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "truncated" in err and "Traceback" not in err
    assert not list(out_dir.glob("cut*"))


def test_a_split_that_leaves_a_split_empty_is_refused_with_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = pair_folder(tmp_path / "data", n=3)
    before = snapshot(root)
    for ratio in (["0.8", "0.1", "0.1"], ["1", "0", "0"]):
        out = tmp_path / f"split-{ratio[0]}"
        assert main(["split", str(root), "--output", str(out), "--ratio", *ratio]) == 2
        err = capsys.readouterr().err
        assert (
            "empty" in err and "train 2, val 0, test 1" in err
        ) or "train 3, val 0, test 0" in err
        assert not out.exists()
    assert snapshot(root) == before


# ----------------------------------------------------------------------------- config values


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "nan", "inf"])
def test_non_finite_numbers_are_refused_by_key(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "run.yaml"
    text = KVASIR_CFG.read_text()
    assert "  LR            : 0.000149" in text
    cfg.write_text(text.replace("  LR            : 0.000149", f"  LR            : {value}", 1))
    save_dir = tmp_path / "output"
    assert main(["train", "--cfg", str(cfg), "--set", f"SAVE_DIR={save_dir}"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: OPTIMIZER.LR must be a finite number" in err
    assert (
        main(
            [
                "train",
                "--cfg",
                str(KVASIR_CFG),
                "--set",
                f"SAVE_DIR={save_dir}",
                f"SCHEDULER.POWER={value}",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert f"--set SCHEDULER.POWER={value} (over {KVASIR_CFG})" in err and "finite" in err
    assert not save_dir.exists()


# ----------------------------------------------------------------------------- runs and weights


@pytest.mark.slow
@pytest.mark.parametrize(
    "change", ["MODEL.BACKBONE=MiT-B1", "LOSS.NAME=CrossEntropy", "OPTIMIZER.NAME=sgd", "SEED=7"]
)
def test_resume_refuses_a_changed_key_before_touching_a_file(
    split_root: Path,
    trained: Path,
    tmp_path: Path,
    change: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    save_dir = tmp_path / "output"
    shutil.copytree(trained, save_dir)
    run = only_run(save_dir)
    before = snapshot(save_dir)
    assert train(split_root, save_dir, "TRAIN.EPOCHS=2", change, resume=run) == 2
    err = capsys.readouterr().err
    key = change.split("=")[0]
    assert f"cannot resume {run}" in err and key in err and "Traceback" not in err
    assert "--resume" in err and "TRAIN.EPOCHS" in err  # what may change
    assert snapshot(save_dir) == before


@pytest.mark.slow
def test_the_study_path_is_never_left_empty_or_lost(
    split_root: Path, trained: Path, tmp_path: Path
) -> None:
    """Run A (1 epoch), run B completes, A resumed for a second epoch: the study path holds A's
    weights again and B's are kept beside it; A's first copy too."""
    save_dir = tmp_path / "output"
    assert train(split_root, save_dir) == 0
    run_a = only_run(save_dir)
    study = next(save_dir.glob("*.pth"))
    assert study_path_owner(study) == str(run_a)
    a_first = study.read_bytes()
    assert train(split_root, save_dir) == 0
    (run_b,) = [p.parent for p in save_dir.glob("*/*/config.yaml") if p.parent != run_a]
    assert study_path_owner(study) == str(run_b)
    b_best = (run_b / "best.pth").read_bytes()
    log_a = run_a / "train.log"
    assert train(split_root, save_dir, "TRAIN.EPOCHS=2", resume=run_a) == 0
    assert study_path_owner(study) == str(run_a)
    kept = [p for p in save_dir.glob(f"{study.stem}.*.pth")]
    assert any(p.read_bytes() == b_best for p in kept)  # B's copy renamed, not lost
    assert any(p.read_bytes() == a_first for p in kept)  # and A's first, when B published
    last_line = log_a.read_text().strip().splitlines()[-1]
    assert f"weights {run_a / 'best.pth'} and {study}" in last_line


def test_concurrent_publishers_lose_no_copy(tmp_path: Path) -> None:
    """Three processes publishing to one study path at once, 30 times each: each run's last
    weights survive (at the path or renamed beside it) and no publish fails."""
    script = textwrap.dedent(
        """
        import sys, time, torch
        from pathlib import Path
        from ssformer.engine.study_weights import publish_best
        run, study, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
        run.mkdir(parents=True, exist_ok=True)
        time.sleep(max(0.0, start - time.time()))  # both processes publish at the same time
        for i in range(30):
            torch.save({"meta": {"run_dir": str(run)}, "i": i}, run / "best.pth")
            publish_best(run / "best.pth", study, run, lambda message: None)
        """
    )
    study = tmp_path / "output" / "SegFormer_MiT-B0_Kvasir.pth"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = str(time.time() + 8.0)  # after both have imported torch
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / name), str(study), start], env=env
        )
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    found = {}
    for path in study.parent.glob("SegFormer_MiT-B0_Kvasir*.pth"):
        payload = torch.load(path, weights_only=True)
        found.setdefault(payload["meta"]["run_dir"], set()).add(payload["i"])
    assert all(29 in found[str(tmp_path / name)] for name in ("a", "b", "c"))
    assert not list(study.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_disk_full_ends_clearly_keeps_the_checkpoints_and_the_run_goes_on(
    split_root: Path, trained: Path, tmp_path: Path
) -> None:
    save_dir = tmp_path / "output"
    shutil.copytree(trained, save_dir)
    run = only_run(save_dir)
    last, best = run / "last.pth", run / "best.pth"
    before = {p: p.read_bytes() for p in (last, best)}
    stale = run / f".last.pth.{_dead_pid()}.tmp"
    stale.write_bytes(b"half a checkpoint")
    limit = (best.stat().st_size + last.stat().st_size) // 2  # best.pth fits, last.pth does not
    args = [
        "train",
        "--cfg",
        str(KVASIR_CFG),
        "--no-progress",
        "--resume",
        str(run),
        "--set",
        *tiny(split_root, save_dir, "TRAIN.EPOCHS=2"),
    ]
    result = cli_subprocess(args, file_size_limit=limit)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"could not write {last}" in result.stderr and "free on" in result.stderr
    assert f"error: could not write {last}" in (run / "train.log").read_text()
    assert last.read_bytes() == before[last]
    assert not list(run.glob(".*.tmp")) and not list(save_dir.glob(".*.tmp"))  # stale one too
    assert "left by a write that was killed" in (run / "train.log").read_text()
    # with space again, the same command finishes the run
    assert cli_subprocess(args).returncode == 0
    assert load_config(run / "config.yaml").train.epochs == 1  # config.yaml is the run's own
    assert torch.load(last, weights_only=True)["epoch"] == 2


def _dead_pid() -> int:
    pid = 999_999
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_an_unwritable_save_dir_is_named_and_nothing_is_created(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert train(split_root, blocker / "output") == 2
    err = capsys.readouterr().err
    assert f"could not write {blocker / 'output'}" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_divergence_names_the_learning_rate_and_what_is_kept(
    split_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One step per epoch whose update blows the weights up: not a metric error about
    probabilities, but the divergence, its learning rate and that no last.pth exists yet."""
    save_dir = tmp_path / "output"
    code = train(split_root, save_dir, "OPTIMIZER.LR=1e38", "TRAIN.BATCH_SIZE=8")
    assert code == 2
    err = capsys.readouterr().err
    assert "learning rate" in err and "no last.pth" in err and "sigmoid" not in err
    assert "OPTIMIZER.LR=1e+37" in err or "OPTIMIZER.LR=1e37" in err
    (run,) = [p.parent for p in save_dir.glob("*/*/train.log")]
    assert "diverged" in (run / "train.log").read_text() or "NaN" in (run / "train.log").read_text()


def test_publishing_waits_for_the_lock_another_process_holds(tmp_path: Path) -> None:
    """The study path is written only under its lock: while this test holds it, a publisher
    in another process waits, and it finishes once the lock is released."""
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"meta": {"run_dir": str(run)}}, run / "best.pth")
    study = tmp_path / "output" / "X.pth"
    study.parent.mkdir()
    script = (
        "import sys; from pathlib import Path; from ssformer.engine.study_weights import "
        "publish_best; publish_best(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), "
        "print)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open(study.parent / ".X.pth.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(run / "best.pth"), str(study), str(run)], env=env
        )
        time.sleep(6.0)  # the publisher has imported torch and waits for the lock
        assert proc.poll() is None and not study.exists()
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    assert proc.wait(timeout=60) == 0
    assert study.read_bytes() == (run / "best.pth").read_bytes()


def test_a_file_where_a_folder_is_expected_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    assert main(["synth", str(blocker / "data"), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert str(blocker / "data") in err and "Not a directory" in err and "Traceback" not in err
    assert blocker.read_text() == "keep me"
