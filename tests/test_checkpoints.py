"""Checkpoint formats: every published layout round-trips through real files; bad files raise a
CheckpointError that names the file and the fix."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import torch
from timm.models.pvt_v2 import checkpoint_filter_fn
from torch import nn

import ssformer
from ssformer.errors import CheckpointError
from ssformer.io.checkpoint_file import read_checkpoint
from ssformer.models import SegmentationModel, build_backbone, build_model
from ssformer.models.backbones import original_to_ours, ours_to_original
from ssformer.models.factories import model_from_checkpoint, verify_backbone_file, verify_model_file
from ssformer.models.layouts import describe_state_dict, export_state_dict
from ssformer.models.loading import FORMAT, load_weights, save_checkpoint_file


def _randomized(module: nn.Module, seed: int = 0) -> nn.Module:
    """Different values in every tensor (BN statistics too), so that a wrong mapping shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.fill_(7)
    return module


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


# --------------------------------------------------------------------------- key conversion


def test_key_mapping_round_trip_and_agrees_with_timm() -> None:
    backbone = build_backbone("PVTv2-B0")
    ours = list(backbone.state_dict())
    original = [ours_to_original(k) for k in ours]
    assert "patch_embed1.proj.weight" in original
    assert "patch_embed3.norm.bias" in original
    assert "block2.1.attn.sr.weight" in original
    assert "block4.0.mlp.dwconv.dwconv.weight" in original
    assert "norm4.weight" in original
    assert not any(k.startswith(("stages", "patch_embed.")) for k in original)
    assert [original_to_ours(k) for k in original] == ours
    assert original_to_ours("head.weight") is None
    # timm's own converter of original PVTv2 checkpoints agrees with ours
    fake = {k: torch.zeros(1) for k in original}
    assert list(checkpoint_filter_fn(fake, backbone)) == ours


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("backbone_name", ["MiT-B0", "PVTv2-B0"])
def test_imagenet_layout_round_trip(tmp_path: Path, backbone_name: str) -> None:
    source = _randomized(build_backbone(backbone_name))
    state = export_state_dict(source, "imagenet")
    state["head.weight"] = torch.zeros(1000, 256)  # the ImageNet classifier is dropped
    state["head.bias"] = torch.zeros(1000)
    path = tmp_path / "mit_b0.pth"
    torch.save(state, path)
    assert describe_state_dict(state)["backbones"] == [backbone_name]

    backbone = build_backbone(backbone_name, pretrained=path)
    _assert_same_weights(source, backbone)
    model = build_model("SSFormer", backbone_name, pretrained=path)
    _assert_same_weights(source, model.backbone)
    verify_backbone_file(path, backbone_name)


def test_timm_layout_backbone_loads(tmp_path: Path) -> None:
    source = _randomized(build_backbone("PVTv2-B0"))
    path = tmp_path / "timm.pth"
    torch.save({**source.state_dict(), "head.weight": torch.zeros(1000, 256)}, path)
    backbone = build_backbone("PVTv2-B0")
    load_weights(backbone, path)
    _assert_same_weights(source, backbone)


@pytest.mark.parametrize(
    ("name", "layout", "classes", "marker"),
    [
        ("SSFormer", "official", 1, "decode_head.linear_fuse34.bn.running_var"),
        ("PLDSegFormer", "study", 2, "decode_head.Conv2d.weight"),
        ("SegFormer", "study", 2, "decode_head.linear_c4.proj.weight"),
    ],
)
def test_full_model_layout_round_trip(
    tmp_path: Path, name: str, layout: str, classes: int, marker: str
) -> None:
    source = _randomized(build_model(name, "MiT-B0", num_classes=classes))
    state = export_state_dict(source, layout)
    assert marker in state
    assert "backbone.block1.0.mlp.dwconv.dwconv.weight" in state
    assert not any(".stages." in k for k in state)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)

    model = build_model(name, "MiT-B0", num_classes=classes)
    ssformer.load_weights(model, path)
    _assert_same_weights(source, model)
    rebuilt = model_from_checkpoint(path)
    assert (rebuilt.name, rebuilt.backbone_name, rebuilt.num_classes) == (name, "MiT-B0", classes)
    _assert_same_weights(source, rebuilt)


def test_wrapped_and_ddp_state_dicts_load(tmp_path: Path) -> None:
    source = _randomized(build_model("SegFormer", "MiT-B0", num_classes=2))
    state = {f"module.{k}": v for k, v in export_state_dict(source, "study").items()}
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)
    model = build_model("SegFormer", "MiT-B0", num_classes=2)
    load_weights(model, path)
    _assert_same_weights(source, model)


def test_own_format_round_trip(tmp_path: Path) -> None:
    source = _randomized(build_model("PLDSegFormer", "PVTv2-B0", num_classes=3))
    path = tmp_path / "run" / "best.pth"
    written = save_checkpoint_file(
        path, source, extra={"step": 12}, epoch=4, config={"lr": 1e-4, "sizes": [352, 352]}
    )
    assert written == path
    assert [p.name for p in path.parent.iterdir()] == ["best.pth"]  # no temporary file left
    payload = read_checkpoint(path)
    assert payload["format"] == FORMAT and payload["step"] == 12
    assert payload["meta"] == {
        "name": "PLDSegFormer",
        "backbone": "PVTv2-B0",
        "num_classes": 3,
        "epoch": 4,
        "config": {"lr": 1e-4, "sizes": [352, 352]},
    }
    model = model_from_checkpoint(path)
    assert isinstance(model, SegmentationModel)
    _assert_same_weights(source, model)
    same = build_model("PLDSegFormer", "PVTv2-B0", num_classes=3)
    load_weights(same, path)
    _assert_same_weights(source, same)
    with pytest.raises(CheckpointError, match=r"num_classes=3"):
        load_weights(build_model("PLDSegFormer", "PVTv2-B0", num_classes=1), path)
    with pytest.raises(CheckpointError, match=r"backbone='PVTv2-B0'"):
        load_weights(build_model("PLDSegFormer", "MiT-B0", num_classes=3), path)


def test_own_format_rejects_unstorable_metadata(tmp_path: Path) -> None:
    model = build_model("SegFormer", "MiT-B0")
    with pytest.raises(CheckpointError, match=r"meta\.root"):
        save_checkpoint_file(tmp_path / "x.pth", model, root=tmp_path)
    assert not list(tmp_path.iterdir())


def test_verify_model_file(tmp_path: Path) -> None:
    path = tmp_path / "ssformer_x.pth"
    torch.save(export_state_dict(build_model("SSFormer", "MiT-B0"), "official"), path)
    verify_model_file(path, "SSFormer", "MiT-B0")
    with pytest.raises(CheckpointError, match="MiT-B0"):
        verify_model_file(path, "SSFormer", "MiT-B1")


# ----------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def official_b0(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("official") / "ssformer_b0.pth"
    torch.save(export_state_dict(build_model("SSFormer", "MiT-B0"), "official"), path)
    return path


def _expect(path: Path, pattern: str, model: nn.Module | None = None) -> str:
    model = model if model is not None else build_model("SSFormer", "MiT-B0")
    with pytest.raises(CheckpointError) as info:
        load_weights(model, path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(pattern, message), message
    return message


def test_missing_and_empty_files(tmp_path: Path) -> None:
    _expect(tmp_path / "nope.pth", "does not exist")
    (tmp_path / "empty.pth").write_bytes(b"")
    _expect(tmp_path / "empty.pth", "empty")
    _expect(tmp_path, "not a file")


def test_truncated_file(tmp_path: Path, official_b0: Path) -> None:
    data = official_b0.read_bytes()
    path = tmp_path / "ssformer_S.pth"
    path.write_bytes(data[: len(data) // 2])
    _expect(path, "truncated.*download again")


def test_html_page_saved_as_pth(tmp_path: Path) -> None:
    path = tmp_path / "mit_b2.pth"
    path.write_text(
        "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
        "<body>Too many users have viewed or downloaded this file recently.</body></html>"
    )
    _expect(path, "HTML page.*Google Drive")


def test_pickle_that_weights_only_refuses(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"model": zipfile.ZipInfo("x")}, path)  # an arbitrary Python object
    _expect(path, "weights_only")


def test_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    _expect(path, "Tensor, not a dict")
    torch.save({"foo.weight": torch.zeros(3)}, path)
    _expect(path, "not a supported format")
    torch.save({"epoch": 3, "lr": 0.1}, path)
    _expect(path, "not a state dict of tensors")


def test_backbone_of_another_size(tmp_path: Path) -> None:
    path = tmp_path / "mit_b1.pth"
    torch.save(export_state_dict(build_backbone("MiT-B1"), "imagenet"), path)
    message = _expect(path, "MiT-B1 backbone.*MiT-B0", build_backbone("MiT-B0"))
    assert "build_backbone('MiT-B1')" in message
    _expect(path, "backbone='MiT-B1'", build_model("SSFormer", "MiT-B0"))


def test_backbone_of_another_family(tmp_path: Path) -> None:
    path = tmp_path / "pvt_v2_b0.pth"
    torch.save(export_state_dict(build_backbone("PVTv2-B0"), "imagenet"), path)
    _expect(path, "PVTv2-B0", build_backbone("MiT-B0"))


def test_model_of_another_backbone(tmp_path: Path) -> None:
    path = tmp_path / "ssformer_b1.pth"
    torch.save(export_state_dict(build_model("SSFormer", "MiT-B1"), "official"), path)
    _expect(path, "MiT-B1.*backbone='MiT-B1'")


def test_model_with_another_head(tmp_path: Path) -> None:
    path = tmp_path / "SegFormer_MiT-B0_Kvasir.pth"
    torch.save(export_state_dict(build_model("SegFormer", "MiT-B0", num_classes=2), "study"), path)
    _expect(path, r"SegFormer model.*build_model\('SegFormer'")


def test_wrong_class_count(tmp_path: Path) -> None:
    path = tmp_path / "PLDSegFormer_MiT-B0_Kvasir.pth"
    model = build_model("PLDSegFormer", "MiT-B0", num_classes=2)
    torch.save(export_state_dict(model, "study"), path)
    _expect(path, "has 2 output classes.*num_classes=2", build_model("PLDSegFormer", "MiT-B0"))


def test_full_model_into_backbone(official_b0: Path) -> None:
    _expect(official_b0, "full SSFormer model", build_backbone("MiT-B0"))


def test_missing_keys_are_named(tmp_path: Path) -> None:
    state = export_state_dict(build_model("SSFormer", "MiT-B0"), "official")
    del state["decode_head.linear_fuse.bn.running_mean"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    _expect(path, r"missing: decode_head\.linear_fuse\.bn\.running_mean")
