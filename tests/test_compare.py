"""``ssformer val --save-maps`` and ``ssformer compare`` on real Kvasir-SEG frames.

Two untrained MiT-B0 models (different initialisations) are scored by ``ssformer val`` on 6 real
frames of several sizes at a 32 px input; ``compare`` must agree with ``scipy.stats.wilcoxon``
and a direct paired mean on the per-image rows of the files ``val`` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from realdata import KVASIR_STEMS, real_subset
from scipy import stats

from ssformer.cli import main
from ssformer.config import load_config
from ssformer.data.protocols import build_datasets
from ssformer.data.recipes import toolbox_map
from ssformer.engine.evaluate import predict_probability
from ssformer.engine.saved_maps import map_folders
from ssformer.errors import ConfigError
from ssformer.models import build_model, load_model, save_checkpoint_file
from ssformer.report.statistics import statistic

REPO = Path(__file__).resolve().parents[1]
KVASIR_CFG = REPO / "configs" / "kvasir-seg.yaml"
METRICS = ["mDice", "Dice@0.5", "mDice_2cls", "mIoU_2cls"]
STEMS = [KVASIR_STEMS[i] for i in (0, 2, 3, 4, 5, 7)]  # six frames of six sizes near 620x530


def _overrides(root: Path, out: Path, recipe: str) -> list[str]:
    return [
        "DEVICE=cpu",
        f"SAVE_DIR={out}",
        f"DATASET.ROOT={root}",
        "MODEL.NAME=SSFormer",
        "MODEL.BACKBONE=MiT-B0",
        "MODEL.PRETRAINED=null",
        "MODEL.NUM_CLASSES=1",
        "LOSS.NAME=DiceBCE",
        "EVAL.IMAGE_SIZE=[32,32]",
        f"EVAL.RECIPE={recipe}",
        "TRAIN.BATCH_SIZE=4",
    ]


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``ssformer val`` of two models (and of the first with maps saved), real frames."""
    base = tmp_path_factory.mktemp("compare")
    root = base / "kvasir"
    real_subset("Kvasir-SEG", STEMS, root / "test")
    files: dict[str, Path] = {"root": root, "base": base}
    for seed in (0, 1):
        torch.manual_seed(seed)
        weights = save_checkpoint_file(
            base / f"model{seed}.pth", build_model("SSFormer", "MiT-B0", num_classes=1)
        )
        files[f"weights{seed}"] = weights
        cmd = ["val", "--cfg", str(KVASIR_CFG), "--weights", str(weights)]
        cmd += ["--out", str(base / f"eval{seed}"), "--metrics", *METRICS]
        if seed == 0:
            cmd += ["--save-maps", str(base / "maps")]
        assert main([*cmd, "--set", *_overrides(root, base / "out", "pranet-toolbox")]) == 0
        files[f"eval{seed}"] = base / f"eval{seed}" / "eval_test_subset.json"  # --metrics
    return files


def _rows(path: Path, key: str) -> dict[str, float]:
    return {row["name"]: row[key] for row in json.loads(path.read_text())["per_image"]}


def test_val_rows_hold_each_images_pooled_counts(scored: dict[str, Path]) -> None:
    data = json.loads(scored["eval0"].read_text())
    assert [row["name"] for row in data["per_image"]] == sorted(STEMS)
    counts = np.array([row["confusion_2cls"] for row in data["per_image"]])
    assert counts.shape == (6, 2, 2) and counts.sum() == 6 * 32 * 32  # the evaluation size
    for key in ("mDice_2cls", "mIoU_2cls"):
        assert statistic(counts, key)[0] == pytest.approx(data["metrics"][key], abs=1e-9)


def test_save_maps_writes_the_toolbox_map_of_every_test_image(scored: dict[str, Path]) -> None:
    folder = scored["base"] / "maps" / "Kvasir"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.png" for s in STEMS)
    config = load_config(KVASIR_CFG, _overrides(scored["root"], scored["base"], "pranet-toolbox"))
    dataset = build_datasets(config, "test").evaluation_sets("test")["test"]
    model = load_model(scored["weights0"], config).eval()
    sizes = set()
    for index, name in enumerate(dataset.names[:3]):
        with Image.open(folder / f"{name}.png") as saved:
            assert saved.mode == "L"
            array = np.asarray(saved)
        with Image.open(scored["root"] / "test" / "images" / f"{name}.jpg") as image:
            assert saved.size == image.size  # the image's own (width, height)
            sizes.add(image.size)
        prob = predict_probability(model, dataset[index]["image"][None])[0]
        expected = toolbox_map(torch.logit(prob.double(), eps=1e-12), array.shape).numpy()
        # the batched forward of `val` may round a probability differently by ~1e-7
        assert np.abs(array.astype(int) - expected.astype(int)).max() <= 1
        assert (array == expected).mean() > 0.999
    assert len(sizes) > 1  # frames of several sizes
    # a folder that holds files is refused before anything is scored: never overwritten
    with pytest.raises(ConfigError, match="already holds files"):
        map_folders(scored["base"] / "maps", ["test"], "Kvasir")
    assert map_folders(None, ["test"], "Kvasir") == {}
    pranet = map_folders(scored["base"] / "other", ["CVC-300", "Kvasir"], "PraNet")
    assert [f.folder.name for f in pranet.values()] == ["CVC-300", "Kvasir"]


def test_compare_agrees_with_scipy_on_the_runs_rows(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp.json"
    assert main(["compare", str(scored["eval0"]), str(scored["eval1"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    a, b = _rows(scored["eval0"], "mDice"), _rows(scored["eval1"], "mDice")
    names = sorted(a)
    diff = np.array([b[n] for n in names]) - np.array([a[n] for n in names])
    assert result["metric"] == "mDice" and result["n"] == 6
    assert result["mean_difference"] == pytest.approx(float(diff.mean()), abs=1e-12)
    expected_p = stats.wilcoxon([b[n] for n in names], [a[n] for n in names]).pvalue
    assert result["p_value"] == pytest.approx(float(expected_p), rel=1e-12)
    low, high = result["ci95"]
    assert low <= result["mean_difference"] <= high
    assert "distinguishable from noise at n = 6" in printed
    assert ("not distinguishable" in printed) == (not result["distinguishable"])
    assert main(["compare", str(scored["eval0"]), str(scored["eval1"]), "--out", str(out)]) == 2


def test_compare_names_images_only_one_run_scored(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(scored["eval0"].read_text())
    dropped = data["per_image"].pop(3)["name"]
    partial = tmp_path / "eval_test.json"
    partial.write_text(json.dumps(data))
    out = tmp_path / "cmp.json"
    assert main(["compare", str(partial), str(scored["eval1"]), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n"] == 5 and result["only_in_b"] == [dropped] and result["only_in_a"] == []
    assert f"scored by B only (1): {dropped}" in capsys.readouterr().out
    a, b = _rows(partial, "Dice@0.5"), _rows(scored["eval1"], "Dice@0.5")
    names = sorted(a)
    out2 = tmp_path / "dice.json"
    cmd = ["compare", str(partial), str(scored["eval1"]), "--metric", "Dice@0.5"]
    assert main([*cmd, "--out", str(out2)]) == 0
    expected = stats.wilcoxon([b[n] for n in names], [a[n] for n in names]).pvalue
    assert json.loads(out2.read_text())["p_value"] == pytest.approx(float(expected))


def test_compare_seeds_per_side_and_a_pooled_metric(
    scored: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "seeds.json"
    cmd = ["compare", "--a", str(scored["eval0"]), str(scored["eval1"])]
    cmd += ["--b", str(scored["eval1"]), "--out", str(out)]
    assert main(cmd) == 0
    result = json.loads(out.read_text())
    a0, a1 = _rows(scored["eval0"], "mDice"), _rows(scored["eval1"], "mDice")
    names = sorted(a0)
    mean_a = [(a0[n] + a1[n]) / 2 for n in names]
    side_b = [a1[n] for n in names]
    assert result["p_value"] == pytest.approx(float(stats.wilcoxon(side_b, mean_a).pvalue))
    assert result["mean_difference"] == pytest.approx(float(np.mean(side_b) - np.mean(mean_a)))

    pooled = tmp_path / "pooled.json"
    cmd = ["compare", str(scored["eval0"]), str(scored["eval1"]), "--metric", "mDice_2cls"]
    assert main([*cmd, "--out", str(pooled)]) == 0
    result = json.loads(pooled.read_text())
    metric_a = json.loads(scored["eval0"].read_text())["metrics"]["mDice_2cls"]
    metric_b = json.loads(scored["eval1"].read_text())["metrics"]["mDice_2cls"]
    assert result["p_value"] is None
    assert result["mean_difference"] == pytest.approx(metric_b - metric_a, abs=1e-9)


def test_compare_errors_name_the_file_and_what_to_do(
    scored: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(scored["eval0"])]) == 2
    assert "give two runs" in capsys.readouterr().err
    assert main(["compare", str(scored["eval0"]), str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    cmd = ["compare", str(scored["eval0"]), str(scored["eval1"]), "--metric", "S_alpha"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "no per-image 'S_alpha'" in err and str(scored["eval0"]) in err
    broken = tmp_path / "eval_test.json"
    broken.write_text(json.dumps({"metrics": {"mDice": 0.5}}))
    assert main(["compare", str(broken), str(scored["eval1"])]) == 2
    assert "no per-image rows" in capsys.readouterr().err
