"""The Hugging Face Hub copies of the backbones: transformers' ``nvidia/mit-b*`` layout and
timm's ``pvt_v2_b*.in1k`` safetensors load strictly and give the same weights as the originals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_hub import original_to_transformers
from safetensors.torch import save_file

from ssformer.errors import CheckpointError
from ssformer.models import build_backbone, build_model, load_weights
from ssformer.models.layouts import describe_state_dict, export_state_dict


def _random_backbone(name: str, seed: int = 0) -> torch.nn.Module:
    backbone = build_backbone(name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in backbone.state_dict().values():
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return backbone


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (key, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), key


def test_transformers_segformer_encoder_loads(tmp_path: Path) -> None:
    source = _random_backbone("MiT-B0")
    original = export_state_dict(source, "imagenet")
    original["head.weight"] = torch.randn(1000, 256)
    original["head.bias"] = torch.randn(1000)
    hub = original_to_transformers(original)
    assert "segformer.encoder.block.0.1.attention.self.key.weight" in hub
    assert "segformer.encoder.patch_embeddings.2.layer_norm.bias" in hub
    assert "segformer.encoder.layer_norm.3.weight" in hub
    path = tmp_path / "pytorch_model.bin"
    torch.save(hub, path)

    backbone = build_backbone("MiT-B0")
    load_weights(backbone, path)
    _same(source, backbone)
    model = build_model("SSFormer", "MiT-B0", pretrained=path)
    _same(source, model.backbone)
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        for a, b in zip(source.eval()(x), backbone.eval()(x), strict=True):
            assert torch.equal(a, b)


def test_transformers_file_of_another_size_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pytorch_model.bin"
    torch.save(
        original_to_transformers(export_state_dict(build_backbone("MiT-B1"), "imagenet")), path
    )
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin holds a MiT-B1 backbone"):
        load_weights(build_backbone("MiT-B0"), path)


def test_transformers_segmentation_model_is_refused(tmp_path: Path) -> None:
    hub = original_to_transformers(export_state_dict(build_backbone("MiT-B0"), "imagenet"))
    hub["decode_head.classifier.weight"] = torch.zeros(150, 256, 1, 1)
    path = tmp_path / "segformer_ade.bin"
    torch.save(hub, path)
    with pytest.raises(CheckpointError, match=r"segformer_ade\.bin .*decode_head\.classifier"):
        load_weights(build_backbone("MiT-B0"), path)


def test_transformers_key_without_value_is_refused(tmp_path: Path) -> None:
    hub = original_to_transformers(export_state_dict(build_backbone("MiT-B0"), "imagenet"))
    del hub["segformer.encoder.block.1.0.attention.self.value.weight"]
    path = tmp_path / "cut.bin"
    torch.save(hub, path)
    with pytest.raises(CheckpointError, match=r"cut\.bin has attention weights of block2\.0\."):
        load_weights(build_backbone("MiT-B0"), path)


def test_timm_safetensors_loads(tmp_path: Path) -> None:
    source = _random_backbone("PVTv2-B0", seed=1)
    state = {
        **source.state_dict(),
        "head.weight": torch.zeros(1000, 256),
        "head.bias": torch.zeros(1000),
    }
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert describe_state_dict(state)["layout"] == "timm"
    backbone = build_backbone("PVTv2-B0")
    load_weights(backbone, path)
    _same(source, backbone)


def test_truncated_safetensors_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(
        {k: v.contiguous() for k, v in build_backbone("PVTv2-B0").state_dict().items()}, str(path)
    )
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors is a damaged or truncated"):
        load_weights(build_backbone("PVTv2-B0"), path)
