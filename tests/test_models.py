"""Model zoo: every model x backbone builds, small inputs give logits at input size, the
architecture matches the published configs (LayerNorm epsilons, MLP ratios, decoder widths,
official key names) and the reproduction study's model-size table."""

from __future__ import annotations

import copy
import io
from collections import OrderedDict
from collections.abc import Callable

import pytest
import torch
from helpers_models import official_pld_forward, study_pld_forward, study_segformer_forward
from torch import nn

from ssformer.errors import ConfigError, SSFormerError
from ssformer.models import SegmentationModel, build_backbone, build_model
from ssformer.models.heads import ProgressiveLocalityDecoder, SegFormerHead, StudyPLDHead
from ssformer.models.layouts import export_state_dict
from ssformer.registry import BACKBONE_SPECS, BACKBONES, MODELS, PRESETS, implementation

SMALL = ("MiT-B0", "PVTv2-B0")


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_names() -> None:
    assert (
        tuple(f"MiT-B{i}" for i in range(6)) + tuple(f"PVTv2-B{i}" for i in range(6)) == BACKBONES
    )
    assert tuple(MODELS) == ("SSFormer", "PLDSegFormer", "SegFormer")
    assert PRESETS == {"SSFormer-S": ("SSFormer", "MiT-B2"), "SSFormer-L": ("SSFormer", "MiT-B4")}
    # every registered model points at its own decoder class, which says what loading needs
    classes = [implementation(MODELS, name) for name in MODELS]
    assert classes == [ProgressiveLocalityDecoder, StudyPLDHead, SegFormerHead]
    markers = [head.checkpoint_marker for head in classes]
    assert len(set(markers)) == len(markers) and all(callable(h.width_for) for h in classes)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("backbone", SMALL)
def test_small_models_run(name: str, backbone: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, backbone, num_classes=2).eval()
    assert (model.name, model.backbone_name, model.num_classes) == (name, backbone, 2)
    with torch.no_grad():
        for height, width in ((64, 64), (96, 64)):
            out = model(torch.randn(2, 3, height, width))
            assert out.shape == (2, 2, height, width)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["SSFormer", "SegFormer"])
def test_any_input_size(name: str) -> None:
    """Sizes that are not multiples of 32 still give logits at input size."""
    model = build_model(name, "MiT-B0").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 70, 90)).shape == (1, 1, 70, 90)


@pytest.mark.parametrize(
    ("name", "literal"),
    [
        ("SSFormer", official_pld_forward),
        ("SegFormer", study_segformer_forward),
        ("PLDSegFormer", study_pld_forward),
    ],
)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_decoder_paper_and_fused_forms_equal_the_literal_order(
    name: str, literal: Callable[..., torch.Tensor], training: bool, fused: bool
) -> None:
    """Each decoder in its paper form, and fused (fusions part by part, 1x1 convs before the
    resizes, BN folded in eval mode), gives the logits, BN running statistics and gradients of
    the literal order of the official code (SSFormer) and of the study (SegFormer, its PLD
    variant)."""
    torch.manual_seed(0)
    head = build_model(name, "MiT-B0", num_classes=2).decode_head
    if fused:
        head.fuse()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for module in head.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    if hasattr(head, "dropout"):
        head.dropout.p = 0.0  # random masks cannot be compared; everything else stays as built
    reference = copy.deepcopy(head)
    head.train(training)
    reference.train(training)
    features = [
        torch.randn(2, c, 64 // s, 64 // s)
        for c, s in zip((32, 64, 160, 256), (4, 8, 16, 32), strict=True)
    ]
    assert head.fused == fused
    got = head(features, (64, 64))
    expected = literal(reference, features, 64)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    if training:
        weights = torch.randn_like(got)
        (got * weights).sum().backward()
        (expected * weights).sum().backward()
        for (name, ours), (_, theirs) in zip(
            head.named_parameters(), reference.named_parameters(), strict=True
        ):
            if theirs.grad is None:  # the unused linear_fuse
                assert ours.grad is None, name
                continue
            # float rounding, relative to the gradient (some, e.g. biases before a training-mode
            # BN, are 0 up to rounding)
            scale = float(theirs.grad.abs().max())
            torch.testing.assert_close(
                ours.grad,
                theirs.grad,
                rtol=1e-3,
                atol=1e-4 * scale + 1e-5,
                msg=lambda m, n=name: f"{n}: {m}",
            )
        for (name, ours), (_, theirs) in zip(
            head.named_buffers(), reference.named_buffers(), strict=True
        ):
            torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("name", MODELS)
def test_fuse_keeps_the_logits_and_the_checkpoint(name: str) -> None:
    """``model.fuse()``: the same logits (within 1e-5 of their scale) on a real-sized input in
    eval mode, and the same state dict (a fused model saves and loads as before)."""
    torch.manual_seed(0)
    model = build_model(name, "MiT-B0", num_classes=2).eval()
    for module in model.modules():  # non-trivial BN statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    image = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        paper = model(image)
        keys = list(model.state_dict())
        fused = model.fuse()(image)
    assert model.decode_head.fused and list(model.state_dict()) == keys
    assert float((fused - paper).abs().max()) <= 1e-5 * max(1.0, float(paper.abs().max()))


# MiT x {PLDSegFormer, SegFormer} are built by test_study_model_size_table below.
COMBINATIONS = [("SSFormer", b) for b in BACKBONES] + [
    (name, b) for name in ("PLDSegFormer", "SegFormer") for b in BACKBONES if b.startswith("PVT")
]


@pytest.mark.parametrize(("name", "backbone"), COMBINATIONS)
def test_every_combination_builds(name: str, backbone: str) -> None:
    with torch.device("meta"):  # shapes only: fast even for B5
        model = build_model(name, backbone, num_classes=3)
    spec = BACKBONE_SPECS[backbone]
    assert model.backbone.out_channels == spec.embed_dims
    assert model.backbone.strides == (4, 8, 16, 32)
    assert len(model.backbone.stages) == 4
    assert [len(stage.blocks) for stage in model.backbone.stages] == list(spec.depths)
    classes = next(m for n, m in model.decode_head.named_modules() if n in ("linear_pred", "pred"))
    assert classes.out_channels == 3


def test_backbone_features_and_training_step() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("MiT-B0")
    features = backbone(torch.randn(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [
        (1, 32, 16, 24),
        (1, 64, 8, 12),
        (1, 160, 4, 6),
        (1, 256, 2, 3),
    ]
    model = build_model("SSFormer", "MiT-B0")
    model(torch.randn(2, 3, 64, 64)).mean().backward()
    without_grad = {name for name, p in model.named_parameters() if p.grad is None}
    # only the official, unused ``linear_fuse`` gets no gradient
    assert without_grad == {
        "decode_head.linear_fuse.conv.weight",
        "decode_head.linear_fuse.bn.weight",
        "decode_head.linear_fuse.bn.bias",
    }


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = build_model("SSFormer", "MiT-B0").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(expected, got, atol=1e-5)


def test_fused_attention_is_used() -> None:
    backbone = build_backbone("MiT-B0")
    attention = [m for m in backbone.modules() if hasattr(m, "fused_attn")]
    assert attention and all(m.fused_attn for m in attention)


@pytest.mark.parametrize("backbone", ["MiT-B0", "PVTv2-B0"])
def test_layer_norm_epsilons_and_mlp_ratio(backbone: str) -> None:
    """Official MiT and PVTv2: patch-embed and SR norms eps 1e-5, block/stage norms eps 1e-6."""
    model = build_backbone(backbone)
    eps = {name: m.eps for name, m in model.named_modules() if isinstance(m, nn.LayerNorm)}
    assert eps["patch_embed.norm"] == 1e-5
    assert eps["stages.1.downsample.norm"] == 1e-5
    assert eps["stages.0.blocks.0.attn.norm"] == 1e-5
    assert eps["stages.0.blocks.0.norm1"] == 1e-6
    assert eps["stages.0.blocks.0.norm2"] == 1e-6
    assert eps["stages.3.norm"] == 1e-6
    fc1 = model.stages[0].blocks[0].mlp.fc1
    assert fc1.out_features == fc1.in_features * (4 if backbone.startswith("MiT") else 8)
    assert model.stages[0].blocks[0].attn.q.bias is not None  # qkv_bias=True
    assert model.stages[0].blocks[0].attn.sr.kernel_size == (8, 8)


def test_pvtv2_matches_timm_parameter_counts() -> None:
    import timm

    for size in ("b0", "b2", "b5"):
        with torch.device("meta"):
            ours = build_backbone(f"PVTv2-{size.upper()}")
            reference = timm.create_model(f"pvt_v2_{size}", num_classes=0)
        assert _params(ours) == _params(reference)


def test_presets_and_errors() -> None:
    with torch.device("meta"):
        small = build_model("SSFormer-S")
        large = build_model("ssformer-l", backbone="mit-b4")
    assert (small.name, small.backbone_name) == ("SSFormer", "MiT-B2")
    assert (large.name, large.backbone_name) == ("SSFormer", "MiT-B4")
    with pytest.raises(ConfigError, match="SSFormer, PLDSegFormer, SegFormer"):
        build_model("UNet", "MiT-B0")
    with pytest.raises(ConfigError, match=r"MiT-B0.*PVTv2-B5"):
        build_model("SSFormer", "ResNet-50")
    with pytest.raises(ConfigError, match="needs a backbone"):
        build_model("SegFormer")
    with pytest.raises(ConfigError, match="MiT-B2"):
        build_model("SSFormer-S", backbone="MiT-B4")
    with pytest.raises(SSFormerError, match="num_classes"):
        build_model("SSFormer", "MiT-B0", num_classes=0)


def test_ssformer_head_has_the_official_keys() -> None:
    """DESIGN.md "The official SSFormer, exactly": key names of the official checkpoints."""
    with torch.device("meta"):
        model = build_model("SSFormer", "MiT-B2")
    keys = {k for k in model.state_dict() if k.startswith("decode_head.")}
    expected = set()
    for level in range(1, 5):
        expected |= {
            f"decode_head.linear_c{level}.proj.0.weight",
            f"decode_head.linear_c{level}.proj.2.weight",
        }
    for fuse in ("linear_fuse", "linear_fuse34", "linear_fuse2", "linear_fuse1"):
        expected.add(f"decode_head.{fuse}.conv.weight")
        expected |= {
            f"decode_head.{fuse}.bn.{b}"
            for b in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        }
    expected |= {"decode_head.linear_pred.weight", "decode_head.linear_pred.bias"}
    assert keys == expected
    head = model.decode_head
    assert head.linear_fuse34.conv.in_channels == 512 and head.linear_fuse.conv.in_channels == 1024
    assert head.linear_c4.proj[0].in_channels == 512 and head.linear_c4.proj[0].bias is None
    assert isinstance(head.dropout, nn.Dropout) and head.dropout.p == 0.1


def test_decoder_widths() -> None:
    with torch.device("meta"):
        for backbone, width in (("MiT-B1", 256), ("PVTv2-B2", 768)):
            seg = build_model("SegFormer", backbone)
            pld = build_model("PLDSegFormer", backbone)
            assert seg.decode_head.linear_fuse.conv.out_channels == width
            assert pld.decode_head.conv_fuse.conv.out_channels == width
        assert build_model("SSFormer", "MiT-B4").decode_head.linear_pred.in_channels == 256


# The reproduction study's model-size table (reference/reproduction-study-model-sizes.png):
# "Size" is the size in MB (1e6 bytes) of torch.save(model.state_dict()) (its get_model_size),
# 2 classes. PARAMS are the exact parameter counts of the same models (ours = theirs).
STUDY_SIZES_MB = {
    ("MiT-B0", "PLDSegFormer"): 15.462749,
    ("MiT-B0", "SegFormer"): 14.926081,
    ("MiT-B1", "PLDSegFormer"): 55.315293,
    ("MiT-B1", "SegFormer"): 54.778625,
    ("MiT-B2", "PLDSegFormer"): 114.261413,
    ("MiT-B2", "SegFormer"): 109.518217,
    ("MiT-B3", "PLDSegFormer"): 193.848261,
    ("MiT-B3", "SegFormer"): 189.104937,
    ("MiT-B4", "PLDSegFormer"): 261.020605,
    ("MiT-B4", "SegFormer"): 256.277345,
    ("MiT-B5", "PLDSegFormer"): 343.498715,
    ("MiT-B5", "SegFormer"): 338.755437,
}
PARAMS = {
    ("MiT-B0", "PLDSegFormer"): 3_846_770,
    ("MiT-B0", "SegFormer"): 3_714_658,
    ("MiT-B1", "PLDSegFormer"): 13_809_874,
    ("MiT-B1", "SegFormer"): 13_677_762,
    ("MiT-B2", "PLDSegFormer"): 28_530_898,
    ("MiT-B2", "SegFormer"): 27_348_162,
    ("MiT-B3", "PLDSegFormer"): 48_406_738,
    ("MiT-B3", "SegFormer"): 47_224_002,
    ("MiT-B4", "PLDSegFormer"): 65_177_298,
    ("MiT-B4", "SegFormer"): 63_994_562,
    ("MiT-B5", "PLDSegFormer"): 85_777_618,
    ("MiT-B5", "SegFormer"): 84_594_882,
}


@pytest.mark.parametrize(("backbone", "name"), list(STUDY_SIZES_MB))
def test_study_model_size_table(backbone: str, name: str) -> None:
    """Tensor bytes + torch.save's per-tensor overhead (< 500 bytes each) = the table's size."""
    with torch.device("meta"):
        model = build_model(name, backbone, num_classes=2)
    assert _params(model) == PARAMS[(backbone, name)]
    assert model.backbone.out_channels == BACKBONE_SPECS[backbone].embed_dims
    state = export_state_dict(model, "study")
    tensor_bytes = sum(t.numel() * t.element_size() for t in state.values())
    overhead = STUDY_SIZES_MB[(backbone, name)] * 1e6 - tensor_bytes
    assert 0 < overhead < 500 * len(state), overhead


@pytest.mark.parametrize("name", ["PLDSegFormer", "SegFormer"])
def test_study_model_size_b0_to_the_kilobyte(name: str) -> None:
    """Saving B0 as the study did (state dict with its module metadata) gives the table's size
    within 1 kB (the rest is pickle detail of another torch version)."""
    model = build_model(name, "MiT-B0", num_classes=2)
    state = OrderedDict(export_state_dict(model, "study"))
    metadata: OrderedDict[str, dict[str, int]] = OrderedDict({"": {"version": 1}})
    for key in state:
        parts = key.split(".")[:-1]
        for end in range(1, len(parts) + 1):
            metadata.setdefault(".".join(parts[:end]), {"version": 2 if parts[-1] == "bn" else 1})
    state._metadata = metadata  # type: ignore[attr-defined]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    assert abs(len(buffer.getvalue()) - STUDY_SIZES_MB[("MiT-B0", name)] * 1e6) < 1000


def test_model_is_segmentation_model() -> None:
    model = build_model("SegFormer", "MiT-B0")
    assert isinstance(model, SegmentationModel)
    assert "MiT-B0" in repr(model)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = build_model("SegFormer", "MiT-B0").train()
    x = torch.randn(1, 3, 64, 64)
    torch.manual_seed(1)
    model(x).sum().backward()
    expected = model.backbone.patch_embed.proj.weight.grad.clone()
    model.zero_grad()
    model.backbone.set_grad_checkpointing(True)
    torch.manual_seed(1)
    model(x).sum().backward()
    assert torch.allclose(model.backbone.patch_embed.proj.weight.grad, expected, atol=1e-5)
