"""Config loading, validation, overrides, sweeps and saving (ssformer.config)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from ssformer.config import (
    apply_overrides,
    build_config,
    expand_sweep,
    load_config,
    load_configs,
    packaged_configs,
    read_raw,
    resolve_config_path,
    save_config,
)
from ssformer.engine.execution import resolve_device
from ssformer.errors import ConfigError
from ssformer.registry import BACKBONES, MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
KVASIR = CONFIGS / "kvasir-seg.yaml"
CVC_AUTO = CONFIGS / "cvc-clinicdb-auto.yaml"

# sha256 of the reproduction study's two config files: our copies must stay byte-identical.
SEED_SHA256 = {
    "kvasir-seg.yaml": "5a4f619590da131a6806615e69c6f31d8fb8b7eb1c8e9f19f909d5faa9337645",
    "cvc-clinicdb-auto.yaml": "4ac0fa2fa41dd60377b6b7061e2622e0b513f58604feb0422d99771179b3b810",
}

MINIMAL = """\
MODEL:
  NAME: SegFormer
  BACKBONE: MiT-B0
DATASET:
  ROOT: data/x
"""


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(SEED_SHA256))
def test_seed_configs_are_byte_identical(name: str) -> None:
    assert hashlib.sha256((CONFIGS / name).read_bytes()).hexdigest() == SEED_SHA256[name]


def test_repository_configs_are_the_packaged_ones() -> None:
    """``configs/`` is a link to the package's configs, so the two can never drift apart."""
    packaged = packaged_configs()
    assert sorted(p.name for p in packaged.values()) == sorted(
        p.name for p in CONFIGS.glob("*.yaml")
    )
    assert CONFIGS.resolve() == next(iter(packaged.values())).parent.resolve()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    configs = load_configs(path)
    assert configs
    for config in configs:
        assert config.model.name in MODEL_NAMES
        assert config.model.backbone in BACKBONES


def test_seed_kvasir_values() -> None:
    c = load_config(KVASIR)
    assert c.device == "cuda" and c.save_dir == "output"
    assert (c.model.name, c.model.backbone) == ("SegFormer", "MiT-B1")
    assert c.model.pretrained == "checkpoints/backbones/mit/mit_b1.pth"
    assert c.model.num_classes == 2  # the study's 2-class softmax DiceLoss
    assert (c.dataset.name, c.dataset.root, c.dataset.ignore_label) == (
        "Kvasir",
        "data/Kvasir-SEG",
        255,
    )
    assert c.train.image_size == (352, 352) and c.train.batch_size == 16
    assert c.train.epochs == 200 and c.train.amp is True and c.train.ddp is False
    assert c.loss.name == "DiceLoss" and c.loss.cls_weights is False
    assert (c.optimizer.name, c.optimizer.lr, c.optimizer.weight_decay) == ("adamw", 0.000149, 0.1)
    assert (c.scheduler.name, c.scheduler.power, c.scheduler.warmup) == ("plrd", 0.9, 0)
    assert c.eval.model_path == "output/SegFormer_MiT-B1_Kvasir.pth"
    assert c.eval.msf.scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    assert c.test.overlay is True
    assert c.seed == 42 and c.dataset.split.seed == 1337
    assert c.run_name == "SegFormer_MiT-B1_Kvasir"
    assert c.best_checkpoint_path == Path("output/SegFormer_MiT-B1_Kvasir.pth")


def test_sweep_expands_model_major_with_paired_pretrained() -> None:
    configs = load_configs(CVC_AUTO)
    assert len(configs) == 12
    assert [c.model.name for c in configs] == ["PLDSegFormer"] * 6 + ["SegFormer"] * 6
    assert [c.model.backbone for c in configs[:6]] == [f"MiT-B{i}" for i in range(6)]
    for c in configs:
        digit = c.model.backbone[-1]
        assert c.model.pretrained == f"checkpoints/backbones/mit/mit_b{digit}.pth"
        assert c.eval.model_path == f"output/cvcclinicdb/{c.run_name}.pth"
        assert c.run_name.endswith("_CVCClinicDB")


def test_load_config_refuses_a_sweep() -> None:
    with pytest.raises(ConfigError, match=r"sweep of 12 runs.*ssformer sweep"):
        load_config(CVC_AUTO)


def test_override_picks_one_run_of_a_sweep() -> None:
    c = load_config(CVC_AUTO, ["MODEL.NAME=SegFormer", "MODEL.BACKBONE=MiT-B3"])
    assert (c.model.name, c.model.backbone) == ("SegFormer", "MiT-B3")
    assert c.model.pretrained == "checkpoints/backbones/mit/mit_b3.pth"
    assert c.eval.model_path == "output/cvcclinicdb/SegFormer_MiT-B3_CVCClinicDB.pth"
    assert len(load_configs(CVC_AUTO, ["MODEL.BACKBONE=MiT-B0"])) == 2


def test_override_backbone_outside_sweep_needs_pretrained() -> None:
    with pytest.raises(ConfigError, match=r"MODEL.PRETRAINED as well"):
        load_configs(CVC_AUTO, ["MODEL.BACKBONE=PVTv2-B2"])
    configs = load_configs(
        CVC_AUTO, ["MODEL.BACKBONE=PVTv2-B2", "MODEL.PRETRAINED=null", "MODEL.NAME=SegFormer"]
    )
    assert len(configs) == 1 and configs[0].model.pretrained is None


def test_overrides_parse_yaml_values() -> None:
    c = load_config(
        KVASIR,
        [
            "TRAIN.EPOCHS=1",
            "DEVICE=cpu",
            "TRAIN.IMAGE_SIZE=[256, 320]",
            "OPTIMIZER.LR=1e-3",
            "TRAIN.WORKERS=0",
            "EVAL.MSF.ENABLE=true",
        ],
    )
    assert c.train.epochs == 1 and c.device == "cpu"
    assert c.train.image_size == (256, 320)
    assert c.optimizer.lr == pytest.approx(1e-3)
    assert c.train.workers == 0 and c.eval.msf.enable is True


def test_unknown_override_key_suggests() -> None:
    with pytest.raises(ConfigError, match=r"TRAIN\.BATCH_SZE.*Did you mean TRAIN\.BATCH_SIZE\?"):
        load_config(KVASIR, ["TRAIN.BATCH_SZE=4"])
    with pytest.raises(ConfigError, match=r"KEY=VALUE"):
        apply_overrides({}, ["TRAIN.EPOCHS"])


def test_unknown_key_in_file_names_file_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "TRAIN:\n  BATCH_SZE: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "TRAIN.BATCH_SZE" in message
    assert "Did you mean TRAIN.BATCH_SIZE?" in message


def test_wrong_type_names_key_file_and_expected(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "TRAIN:\n  EPOCHS: many\n")
    with pytest.raises(
        ConfigError, match=r"cfg\.yaml: TRAIN\.EPOCHS must be an integer, got 'many'"
    ):
        load_config(path)
    path = write(tmp_path, MINIMAL + "TRAIN:\n  IMAGE_SIZE: 352\n")
    with pytest.raises(ConfigError, match=r"TRAIN\.IMAGE_SIZE must be a list of 2 integers"):
        load_config(path)
    path = write(tmp_path, MINIMAL + "TRAIN:\n  AMP: 1\n")
    with pytest.raises(ConfigError, match=r"TRAIN\.AMP must be true/false"):
        load_config(path)


def test_wrong_values_are_refused_with_suggestions(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("MiT-B0", "mit_b0"))
    with pytest.raises(ConfigError, match=r"MODEL\.BACKBONE='mit_b0'.*Did you mean MiT-B0\?"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"MODEL\.NAME='SegFromer'.*Did you mean SegFormer\?"):
        load_config(path, ["MODEL.NAME=SegFromer", "MODEL.BACKBONE=MiT-B0"])
    with pytest.raises(ConfigError, match=r"DEVICE='gpu'"):
        load_config(write(tmp_path, MINIMAL), ["DEVICE=gpu"])
    with pytest.raises(ConfigError, match=r"multiples of 32"):
        load_config(write(tmp_path, MINIMAL), ["TRAIN.IMAGE_SIZE=[350,350]"])
    with pytest.raises(ConfigError, match=r"SCHEDULER\.NAME='cosine'"):
        load_config(write(tmp_path, MINIMAL), ["SCHEDULER.NAME=cosine"])
    with pytest.raises(ConfigError, match=r"DATASET\.ROOT is required"):
        load_config(write(tmp_path, "MODEL:\n  NAME: SSFormer-S\n"))


def test_selecting_on_test_needs_the_leak_flag(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match=r"SELECT_BEST_ON_TEST_LEAKS"):
        load_config(path, ["TRAIN.SELECT_ON=test"])
    c = load_config(path, ["TRAIN.SELECT_ON=test", "TRAIN.SELECT_BEST_ON_TEST_LEAKS=true"])
    assert c.train.select_on == "test"


def test_classes_follow_the_loss(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    assert load_config(path).model.num_classes == 2
    ssformer = load_config(path, ["MODEL.NAME=SSFormer"])
    assert ssformer.loss.name == "DiceBCE" and ssformer.model.num_classes == 1
    assert load_config(path, ["LOSS.NAME=ce"]).loss.name == "CrossEntropy"
    with pytest.raises(ConfigError, match=r"needs MODEL\.NUM_CLASSES=1"):
        load_config(path, ["LOSS.NAME=DiceBCE", "MODEL.NUM_CLASSES=2"])
    with pytest.raises(ConfigError, match=r"softmax loss"):
        load_config(path, ["MODEL.NUM_CLASSES=1"])
    with pytest.raises(ConfigError, match=r"OFFICIAL_DOUBLE_SIGMOID"):
        load_config(path, ["TRAIN.OFFICIAL_DOUBLE_SIGMOID=true"])


def test_presets_fix_the_backbone(tmp_path: Path) -> None:
    path = write(tmp_path, "MODEL:\n  NAME: SSFormer-L\nDATASET:\n  ROOT: d\n")
    c = load_config(path)
    assert c.model.backbone == "MiT-B4" and c.architecture == "SSFormer"
    with pytest.raises(ConfigError, match=r"SSFormer with MiT-B4"):
        load_config(path, ["MODEL.BACKBONE=MiT-B2"])


def test_yaml_exponent_strings_are_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "OPTIMIZER:\n  LR: 1e-4\n")
    assert load_config(path).optimizer.lr == pytest.approx(1e-4)


def test_save_config_round_trips(tmp_path: Path) -> None:
    c = load_config(KVASIR, ["TRAIN.EPOCHS=3", "TRAIN.IMAGE_SIZE=[256,256]"])
    out = save_config(c, tmp_path / "run" / "config.yaml")
    assert out.is_file() and not list(out.parent.glob("*.tmp"))
    again = load_config(out)
    assert again == c
    assert build_config(read_raw(out), str(out)) == c
    assert "EPOCHS: 3" in out.read_text()


def test_expand_sweep_on_raw_mapping() -> None:
    raw = read_raw(CVC_AUTO)
    raw["MODEL"]["NAME"] = ["SSFormer"]
    raw["LOSS"] = {"NAME": "DiceBCE"}
    del raw["EVAL"]["MODEL_PATH"]
    configs = expand_sweep(raw, "x.yaml")
    assert [c.model.backbone for c in configs] == [f"MiT-B{i}" for i in range(6)]
    assert configs[0].eval.model_path == "output/cvcclinicdb/SSFormer_MiT-B0_CVCClinicDB.pth"
    raw["MODEL"]["PRETRAINED"] = raw["MODEL"]["PRETRAINED"][:3]
    with pytest.raises(ConfigError, match=r"x\.yaml: MODEL\.PRETRAINED is a list of 3"):
        expand_sweep(raw, "x.yaml")


def test_packaged_config_by_name() -> None:
    assert resolve_config_path("kvasir-seg").name == "kvasir-seg.yaml"
    assert load_config("demo.yaml").dataset.root == "data/synthetic"
    with pytest.raises(ConfigError, match=r"Did you mean 'kvasir-seg'\?"):
        resolve_config_path("kvasir-sge")


def test_resolve_device() -> None:
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if torch.cuda.is_available():
        assert resolve_device("cuda0") == torch.device("cuda:0")
    else:
        with pytest.raises(ConfigError, match=r"no CUDA GPU"):
            resolve_device("cuda0")
    with pytest.raises(ConfigError):
        resolve_device("gpu")


def test_loading_is_fast_and_does_not_import_torch() -> None:
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from ssformer.config import load_configs\n"
        f"load_configs({str(CVC_AUTO)!r})\n"
        "assert 'torch' not in sys.modules, 'config imported torch'\n"
        "print(time.perf_counter() - t)\n"
    )
    env_path = str(ROOT / "src")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path},
        check=True,
    )
    assert float(result.stdout.strip()) < 1.0
