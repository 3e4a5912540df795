"""``ssformer report`` on real run folders written here (config.yaml, metrics.jsonl,
eval_test.json as training and ``ssformer val`` write them); no model weights needed."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
import yaml

from ssformer.cli import main
from ssformer.data.split import split_dataset
from ssformer.errors import ConfigError
from ssformer.report import build_report
from ssformer.report.predictions import choose_samples
from ssformer.report.published_conventions import CONVENTIONS, find_published, load_published

# Our test numbers (mIoU_2cls, mDice_2cls are x100 as ssformer.metrics writes them).
OURS = {
    ("PLDSegFormer", "MiT-B0"): (84.50, 91.00),
    ("SegFormer", "MiT-B0"): (84.00, 92.00),
    ("PLDSegFormer", "MiT-B1"): (85.00, 91.50),
    ("SegFormer", "MiT-B1"): (83.91, 90.84),
}
# The reproduction study's Kvasir-SEG numbers for these four (published-results.csv).
STUDY = {
    ("PLDSegFormer", "MiT-B0"): (84.02, 91.31),
    ("SegFormer", "MiT-B0"): (84.77, 91.76),
    ("PLDSegFormer", "MiT-B1"): (84.37, 91.52),
    ("SegFormer", "MiT-B1"): (84.91, 91.84),
}


def _tiny_pairs(folder: Path, stems: list[str]) -> None:
    """``images/`` + ``masks/`` of 1x1 PNGs named ``stems``: a data set's file list, no more."""
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    pixel = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
        "3a7e9b550000000a49444154789c6360000000020001e221bc330000000049454e44ae426082"
    )
    for stem in stems:
        (folder / "images" / f"{stem}.png").write_bytes(pixel)
        (folder / "masks" / f"{stem}.png").write_bytes(pixel)


def kvasir_ids(count: int) -> list[str]:
    """Names of the Kvasir-SEG kind (25 characters, ``cju...``)."""
    return [f"cju{index:022d}" for index in range(count)]


@pytest.fixture(scope="module")
def kvasir_split(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A split made by ``ssformer split`` of 1000 files named like Kvasir-SEG: the evidence a
    real download gives (the report reads it from ``ROOT/split.json``)."""
    base = tmp_path_factory.mktemp("kvasir")
    _tiny_pairs(base / "Kvasir-SEG", kvasir_ids(1000))
    return str(split_dataset(base / "Kvasir-SEG", base / "split").output)


@pytest.fixture(scope="module")
def pranet_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The PraNet benchmark's layout with its published counts (1x1 images)."""
    from ssformer.data.layout import PRANET

    root = tmp_path_factory.mktemp("pranet") / "PraNet"
    _tiny_pairs(root / "TrainDataset", [f"t{i}" for i in range(PRANET.train_count)])
    for name, count in PRANET.test_counts.items():
        _tiny_pairs(root / "TestDataset" / name, [f"{name}{i}" for i in range(count)])
    return str(root)


def write_run(
    folder: Path,
    model: str,
    backbone: str,
    dataset: str = "Kvasir",
    scores: tuple[float, float] = (85.0, 92.0),
    epochs: int = 4,
    protocol: str = "split",
    root: str = "data/nowhere",
    per_image: list[dict[str, object]] | None = None,
    recipe: str | None = "study",
) -> Path:
    folder.mkdir(parents=True)
    config = {
        "DEVICE": "cpu",
        "SAVE_DIR": "output",
        "MODEL": {"NAME": model, "BACKBONE": backbone, "PRETRAINED": None, "NUM_CLASSES": 2},
        "DATASET": {"NAME": dataset, "ROOT": root, "PROTOCOL": protocol},
        "TRAIN": {"IMAGE_SIZE": [352, 352], "BATCH_SIZE": 16, "EPOCHS": epochs},
        "EVAL": {"IMAGE_SIZE": [352, 352]},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with (folder / "metrics.jsonl").open("w", encoding="utf-8") as handle:
        for epoch in range(1, epochs + 1):
            row = {
                "epoch": epoch,
                "lr": 1.49e-4 * (1 - epoch / (epochs + 1)),
                "train_loss": 0.8 / epoch,
                "val/Dice@0.5": 0.9 - 0.4 / epoch,
                "val/mDice_2cls": 92.0 - 20.0 / epoch,
                "train_time_s": 12.5,
                "best_epoch": epoch,
            }
            handle.write(json.dumps(row) + "\n")
    miou, mdice = scores
    evaluation = {
        "split": "test",
        "dataset": dataset,
        "metrics": {
            "mDice": 0.9012,
            "mIoU": 0.8456,
            "Dice@0.5": 0.9050,
            "official_dice": 0.9010,
            "official_iou": 0.8400,
            "mIoU_2cls": miou,
            "mDice_2cls": mdice,
        },
        "msf": False,
        "recipe": recipe,
        "per_image": per_image
        if per_image is not None
        else [{"name": f"img{i}", "Dice@0.5": 0.5 + 0.05 * i, "IoU@0.5": 0.4} for i in range(6)],
    }
    (folder / "eval_test.json").write_text(json.dumps(evaluation), encoding="utf-8")
    return folder


@pytest.fixture()
def four_runs(tmp_path: Path, kvasir_split: str) -> Path:
    root = tmp_path / "runs"
    for (model, backbone), scores in OURS.items():
        # the engine's layout: SAVE_DIR/<NAME>_<BACKBONE>_<DATASET.NAME>/<timestamp>
        folder = root / "kvasir" / f"{model}_{backbone}_Kvasir" / "20261125-120000"
        write_run(folder, model, backbone, scores=scores, root=kvasir_split)
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_command_writes_table_with_published_numbers(
    four_runs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    readme_png = tmp_path / "repo" / "results.png"
    code = main(
        [
            "report",
            str(four_runs),
            "--out",
            str(out),
            "--png",
            str(readme_png),
            "--skip-model-sizes",
        ]
    )
    assert code == 0
    for name in ("results.md", "results.csv", "results.png", "model-sizes.md", "model-sizes.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert readme_png.read_bytes() == (out / "results.png").read_bytes()
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    rows = read_csv(out / "results.csv")
    assert {r["run"] for r in rows} == {f"{m}_{b}_Kvasir/20261125-120000" for m, b in OURS}
    assert {r["convention"] for r in rows} == {"pooled-2-class-mean-x100"}
    for row in rows:
        key = (row["model"], row["backbone"])
        index = 0 if row["metric"] == "mIoU" else 1
        assert row["our_key"] == ("mIoU_2cls", "mDice_2cls")[index]
        assert row["protocol"] == "split-80-10-10-seed-1337"
        assert row["train_data"] == row["test_set"] == "Kvasir-SEG"
        assert row["head"] == ("PLD" if row["model"] == "PLDSegFormer" else "SeD")
        assert row["published_source"] == "reproduction-study"
        assert float(row["ours"]) == pytest.approx(OURS[key][index])
        assert float(row["published"]) == pytest.approx(STUDY[key][index])
        assert float(row["difference"]) == pytest.approx(OURS[key][index] - STUDY[key][index])
        assert row["problems"] == ""

    md = (out / "results.md").read_text(encoding="utf-8")
    assert "pooled-2-class-mean-x100" in md
    assert CONVENTIONS["pooled-2-class-mean-x100"].header("mDice") in md
    assert "mDice_2cls (study: pooled 2-class mean ×100)" in md
    # no pooled per-image counts in these runs' rows: no interval ("—")
    assert (
        "| Kvasir-SEG | MiT-B0 | **84.50** | — | 84.02 | +0.48 | **84.00** | — | 84.77 | -0.77 |"
        in md
    )
    assert "| Kvasir-SEG | MiT-B1 | **85.00** | — | 84.37 | +0.63 |" in md
    # mean over backbones, like the study's "Kvasir Total" row: (84.50 + 85.00) / 2 vs (84.02 + 84.37) / 2
    assert "| Kvasir-SEG | mean | **84.75** |  | 84.19 | +0.56 |" in md
    for model, backbone in OURS:
        curves = f"curves-{model}_{backbone}_Kvasir_20261125-120000.png"
        assert curves in md and (out / curves).is_file()
    # no weights: the grid is not drawn and the report says why
    assert "no best.pth" in md
    assert "per-image-foreground" in md and "official-test-py" in md  # the mapping table


def test_synthetic_run_has_no_published_counterpart(tmp_path: Path) -> None:
    run = write_run(tmp_path / "synth-run", "PLDSegFormer", "MiT-B0", dataset="synthetic")
    out = tmp_path / "report"
    build_report([run], out, predictions=False, model_sizes=False)
    rows = read_csv(out / "results.csv")
    assert rows and all(r["published"] == "" and r["difference"] == "" for r in rows)
    assert all(r["train_data"] == "synthetic" for r in rows)
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "| synthetic (generated, not Kvasir) | MiT-B0 | **85.00** | — | — | — |" in md
    assert "Kvasir-SEG" not in md.split("## Metric conventions")[0]


def _deltas(run: Path, out: Path) -> list[dict[str, str]]:
    build_report([run], out, predictions=False, model_sizes=False)
    return read_csv(out / "results.csv")


def test_synthetic_data_named_kvasir_gets_no_published_number(tmp_path: Path) -> None:
    from ssformer.data.synthetic import generate_synthetic_dataset

    data = generate_synthetic_dataset(tmp_path / "frames", n=10, size=32, seed=1)
    split = split_dataset(data, tmp_path / "kvasir-split", (0.6, 0.2, 0.2), 1337).output
    run = write_run(tmp_path / "run", "PLDSegFormer", "MiT-B0", dataset="Kvasir", root=str(split))
    rows = _deltas(run, tmp_path / "report")
    assert rows and all(r["published"] == "" and r["difference"] == "" for r in rows)
    assert all(r["train_data"] == "synthetic" for r in rows)
    md = (tmp_path / "report" / "results.md").read_text(encoding="utf-8")
    assert "Kvasir-SEG" not in md.split("## Metric conventions")[0]
    png = (tmp_path / "report" / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_custom_or_unverified_data_and_other_recipes_get_no_delta(
    tmp_path: Path, kvasir_split: str
) -> None:
    custom = tmp_path / "custom"
    _tiny_pairs(custom, [f"frame{i}" for i in range(20)])
    split = split_dataset(custom, tmp_path / "custom-split", (0.6, 0.2, 0.2), 1337).output
    for name, root, recipe, label in (
        ("custom", str(split), "study", "Kvasir-SEG (custom, unverified)"),
        ("nowhere", "data/nowhere", "study", "Kvasir-SEG (custom, unverified)"),
        ("short", _kvasir_subset(tmp_path), "study", "Kvasir-SEG (custom, unverified)"),
        ("official-recipe", kvasir_split, "official", "Kvasir-SEG"),
    ):
        run = write_run(tmp_path / f"run-{name}", "SegFormer", "MiT-B0", root=root, recipe=recipe)
        rows = _deltas(run, tmp_path / f"report-{name}")
        assert rows and all(r["difference"] == "" for r in rows), name
        assert {r["train_data"] for r in rows} == {label}, name
    # the same run on the verified split with the study's recipe is compared
    run = write_run(tmp_path / "verified", "SegFormer", "MiT-B0", root=kvasir_split)
    assert all(r["difference"] != "" for r in _deltas(run, tmp_path / "report-verified"))


def test_kvasir_split_with_other_parameters_or_an_old_manifest(tmp_path: Path) -> None:
    _tiny_pairs(tmp_path / "Kvasir-SEG", kvasir_ids(1000))
    other = split_dataset(tmp_path / "Kvasir-SEG", tmp_path / "split-50", (0.5, 0.25, 0.25), 7)
    run = write_run(tmp_path / "run-50", "SegFormer", "MiT-B0", root=str(other.output))
    rows = _deltas(run, tmp_path / "report-50")
    assert all(r["difference"] == "" for r in rows)
    assert {r["train_data"] for r in rows} == {"Kvasir-SEG (custom, unverified)"}
    # a manifest without identity (an earlier version): splitting again adds it
    good = split_dataset(tmp_path / "Kvasir-SEG", tmp_path / "split-old").output
    manifest = json.loads((good / "split.json").read_text())
    del manifest["identity"]
    (good / "split.json").write_text(json.dumps(manifest))
    run = write_run(tmp_path / "run-old", "SegFormer", "MiT-B0", root=str(good))
    assert all(r["difference"] == "" for r in _deltas(run, tmp_path / "report-old"))
    assert not split_dataset(tmp_path / "Kvasir-SEG", good).created
    assert json.loads((good / "split.json").read_text())["identity"]["verified_as"] == "Kvasir-SEG"
    assert all(r["difference"] != "" for r in _deltas(run, tmp_path / "report-new"))


def _kvasir_subset(tmp_path: Path) -> str:
    """Kvasir-SEG ids, but 100 of them: not the published data set."""
    _tiny_pairs(tmp_path / "kvasir-100", kvasir_ids(100))
    return str(split_dataset(tmp_path / "kvasir-100", tmp_path / "k100-split").output)


def test_broken_runs_are_flagged_not_fatal(
    four_runs: Path, tmp_path: Path, kvasir_split: str
) -> None:
    corrupt = write_run(
        tmp_path / "more" / "corrupt", "SegFormer", "MiT-B2", scores=(85.5, 92.2), root=kvasir_split
    )
    (corrupt / "metrics.jsonl").write_text(
        '{"epoch": 1, "train_loss": 0.5}\n{"epoch": 2, "tr', encoding="utf-8"
    )
    missing = write_run(
        tmp_path / "more" / "missing",
        "PLDSegFormer",
        "MiT-B2",
        scores=(85.7, 92.3),
        root=kvasir_split,
    )
    (missing / "metrics.jsonl").unlink()
    garbage = write_run(tmp_path / "more" / "garbage", "PLDSegFormer", "MiT-B3")
    (garbage / "metrics.jsonl").write_bytes(os.urandom(64) + b"\xff\xfe")
    (garbage / "eval_test.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "report"
    result = build_report([four_runs, tmp_path / "more"], out, predictions=False, model_sizes=False)
    assert len(result.runs) == 7
    rows = read_csv(out / "results.csv")
    by_run = {(r["run"], r["metric"]): r for r in rows}
    corrupt_miou, corrupt_mdice = by_run[("corrupt", "mIoU")], by_run[("corrupt", "mDice")]
    assert "1 corrupt line(s) skipped (line 2)" in corrupt_miou["problems"]
    assert (float(corrupt_miou["published"]), float(corrupt_mdice["published"])) == (85.38, 92.12)
    assert float(corrupt_mdice["difference"]) == pytest.approx(92.2 - 92.12)
    by_run = {r["run"]: r for r in rows}
    assert "metrics.jsonl is missing" in by_run["missing"]["problems"]
    assert (
        by_run["garbage"]["ours"] == ""
        and "eval_test.json unreadable" in by_run["garbage"]["problems"]
    )
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "MiT-B2 (!)" in md
    assert "Runs not in the table" in md and "garbage" in md
    assert (out / "results.png").is_file()


def test_no_run_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no run folders"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    assert main(["report", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o")]) == 2


def test_published_lookup_needs_the_same_convention_and_protocol() -> None:
    published = load_published()
    common = {"train_data": "PraNet-TrainDataset", "test_set": "CVC-ColonDB", "model": "SSFormer"}
    paper = find_published(
        published, protocol="pranet", convention="per-image-foreground", backbone="MiT-B4", **common
    )
    withdrawn = {"protocol": "pranet", "convention": "official-test-py", "backbone": "MiT-B2"}
    assert find_published(published, **withdrawn, **common) is None  # a withdrawn table
    official = find_published(published, **withdrawn, **common, include_withdrawn=True)
    assert paper is not None and paper.values == {"mIoU": 0.721, "mDice": 0.802}
    assert official is not None and official.values == {"mIoU": 0.697, "mDice": 0.772}
    assert official.withdrawn
    assert (
        find_published(
            published,
            protocol="pranet",
            convention="pooled-2-class-mean-x100",
            backbone="MiT-B4",
            **common,
        )
        is None
    )
    study = find_published(
        published,
        protocol="split-80-10-10-seed-1337",
        convention="pooled-2-class-mean-x100",
        train_data="CVC-ClinicDB",
        test_set="CVC-ClinicDB",
        model="SegFormer",
        backbone="MiT-B5",
    )
    assert study is not None and study.values == {"mIoU": 92.35, "mDice": 96.02}


def test_pranet_run_compares_official_and_paper_conventions(
    tmp_path: Path, pranet_root: str
) -> None:
    run = write_run(
        tmp_path / "pranet-run",
        "SSFormer",
        "MiT-B4",
        dataset="PraNet",
        protocol="pranet",
        root=pranet_root,
        recipe="pranet-toolbox",
    )
    evaluation = json.loads((run / "eval_test.json").read_text(encoding="utf-8"))
    evaluation["dataset"] = "CVC-ColonDB"
    (run / "eval_test.json").unlink()
    (run / "eval_test_CVC-ColonDB.json").write_text(json.dumps(evaluation), encoding="utf-8")
    default = tmp_path / "default"
    build_report([run], default, predictions=False, model_sizes=False)
    conventions = {r["convention"] for r in read_csv(default / "results.csv")}
    assert conventions == {"per-image-foreground"}  # the withdrawn official table is left out
    text = (default / "results.md").read_text(encoding="utf-8")
    assert "Not compared" in text and "issue 7" in text and "2022-12-01" in text
    out = tmp_path / "report"
    build_report([run], out, predictions=False, model_sizes=False, include_withdrawn=True)
    assert "official repo (withdrawn)" in (out / "results.md").read_text(encoding="utf-8")
    rows = {(r["convention"], r["metric"]): r for r in read_csv(out / "results.csv")}
    paper = rows[("per-image-foreground", "mDice")]
    assert paper["our_key"] == "mDice" and float(paper["published"]) == pytest.approx(0.802)
    assert float(paper["difference"]) == pytest.approx(0.9012 - 0.802)
    official = rows[("official-test-py", "mIoU")]
    assert official["our_key"] == "official_iou" and float(official["published"]) == pytest.approx(
        0.721
    )
    assert official["published_source"] == "ssformer-official-repo (withdrawn)"
    assert ("pooled-2-class-mean-x100", "mDice") not in rows


def test_choose_samples_picks_best_and_worst() -> None:
    per_image = [{"name": f"n{i}", "Dice@0.5": s} for i, s in enumerate([0.2, 0.9, 0.5, 0.95, 0.1])]
    samples = choose_samples(per_image, 2)
    assert [(s.tag, s.name) for s in samples] == [
        ("best 1", "n3"),
        ("best 2", "n1"),
        ("worst 1", "n4"),
        ("worst 2", "n0"),
    ]


@pytest.mark.slow
def test_predictions_grid_from_weights_and_data(tmp_path: Path) -> None:
    import torch

    from ssformer.data.synthetic import generate_synthetic_dataset
    from ssformer.models import build_model, save_checkpoint_file

    data = tmp_path / "synthetic-split"
    generate_synthetic_dataset(data / "test", n=4, size=64, seed=3)
    names = sorted(p.stem for p in (data / "test" / "images").iterdir())
    scores = [0.3, 0.9, 0.1, 0.7]
    per_image = [{"name": n, "Dice@0.5": s} for n, s in zip(names, scores, strict=True)]
    with_scores = write_run(
        tmp_path / "runs" / "scored",
        "SSFormer",
        "MiT-B0",
        dataset="Synthetic",
        root=str(data),
        per_image=per_image,
    )
    without = write_run(
        tmp_path / "runs" / "unscored",
        "SSFormer",
        "MiT-B0",
        dataset="Synthetic",
        root=str(data),
        per_image=[],
    )
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0", num_classes=1)
    for run in (with_scores, without):
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        config["EVAL"]["IMAGE_SIZE"] = [64, 64]
        (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        save_checkpoint_file(run / "best.pth", model)
    out = tmp_path / "report"
    result = build_report([tmp_path / "runs"], out, model_sizes=False, samples=1)
    assert result.notes == []
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "predictions-scored.png" in md and "predictions-unscored.png" in md
    assert "scores from eval_test.json" in md
    assert "has no per-image scores: scored 4 images here" in md
    from PIL import Image

    with Image.open(out / "predictions-scored.png") as image:
        width, height = image.size
    assert width > 600 and height > 300  # 2 rows (best 1, worst 1) x 4 panels
    assert [(s.name, s.score) for s in choose_samples(per_image, 1)] == [
        (names[1], 0.9),
        (names[2], 0.1),
    ]


def test_model_sizes_match_the_study_within_container_overhead(tmp_path: Path) -> None:
    from ssformer.report.model_sizes import count_model, size_rows, write_model_sizes

    params, tensor_mb = count_model("SegFormer", "MiT-B0", 2)
    assert params == pytest.approx(3.7e6, rel=0.01)
    assert tensor_mb == pytest.approx(14.926081, rel=0.01)  # the study's "Size"
    assert tensor_mb < 14.926081  # theirs is a saved file: tensors + container overhead
    rows, note = size_rows(compute=False)
    assert len(rows) == 12 and all(r.params is None and r.published_mb for r in rows)
    assert {(r.model, r.head) for r in rows} == {("PLDSegFormer", "PLD"), ("SegFormer", "SeD")}
    assert "published sizes only" in note
    md, png = write_model_sizes(tmp_path, rows, note)
    assert "| MiT-B5 | PLD | PLDSegFormer | 2 | — | — | 343.499 | — |" in md.read_text("utf-8")
    assert png.read_bytes()[:4] == b"\x89PNG"
