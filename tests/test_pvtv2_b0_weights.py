"""``ssformer download weights pvtv2-b0``: PVTv2-B0's ImageNet weights have no Drive copy, so the
Hub's timm copy (``timm/pvt_v2_b0.in1k``, a safetensors file in timm's layout) is the first
source, served here over loopback HTTP, loaded strictly and saved in the original PVTv2 layout."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers_http import FileRoute, LoopbackServer
from safetensors.torch import save

from ssformer.commands import download as download_command
from ssformer.errors import DownloadError
from ssformer.models import build_backbone, load_weights, zoo
from ssformer.models.layouts import export_state_dict

HUB_PATH = "/timm/pvt_v2_b0.in1k/resolve/main/model.safetensors"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LoopbackServer(max_requests=8) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.url(""))
        yield running


def _timm_file() -> tuple[bytes, dict[str, torch.Tensor]]:
    """A PVTv2-B0 in timm's layout with a classifier (as the Hub file has), and the state dict
    the original layout must hold."""
    torch.manual_seed(0)
    source = build_backbone("PVTv2-B0")
    with torch.no_grad():
        for tensor in source.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_()
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    state["head.weight"] = torch.zeros(1000, 256)
    state["head.bias"] = torch.zeros(1000)
    return save(state), export_state_dict(source, "imagenet")


def test_pvtv2_b0_is_a_known_weight_with_the_hub_as_its_source() -> None:
    source = zoo.WEIGHTS["pvtv2-b0"]
    assert source.drive_id is None
    assert source.hf_repo == "timm/pvt_v2_b0.in1k"
    assert source.url == "https://huggingface.co/timm/pvt_v2_b0.in1k"
    assert "whai362/PVT" in (source.alternative or "")


def test_download_weights_pvtv2_b0_from_the_hub_in_the_original_layout(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body, expected = _timm_file()
    server.routes[HUB_PATH] = FileRoute(body, content_type="application/octet-stream")
    parser = argparse.ArgumentParser(prog="ssformer")
    download_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["download", "weights", "pvtv2-b0", "--dir", str(tmp_path)])
    assert args.func(args) == 0
    final = tmp_path / "checkpoints" / "backbones" / "pvtv2" / "pvt_v2_b0.pth"
    assert sorted(p.name for p in final.parent.iterdir()) == ["pvt_v2_b0.pth"]
    saved = torch.load(final, weights_only=True)
    assert saved.keys() == expected.keys()
    assert "patch_embed1.proj.weight" in saved and "head.weight" not in saved
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    load_weights(build_backbone("PVTv2-B0"), final)  # strict
    requests = server.request_count
    assert zoo.download_weights(["pvtv2-b0"], tmp_path, quiet=True) == [final]
    assert server.request_count == requests  # present and valid: not fetched again


def test_a_failed_hub_download_gives_the_manual_links(
    tmp_path: Path, server: LoopbackServer
) -> None:
    with pytest.raises(DownloadError) as caught:  # the server has no such file: 404
        zoo.download_weights(["pvtv2-b0"], tmp_path, quiet=True)
    message = str(caught.value)
    assert "404" in message
    assert "https://huggingface.co/timm/pvt_v2_b0.in1k" in message
    assert "releases/download/v2/pvt_v2_b0.pth" in message
    assert not (tmp_path / "checkpoints" / "backbones" / "pvtv2" / "pvt_v2_b0.pth").exists()
