"""Download side of the data layer, against a real HTTP server on 127.0.0.1.

Archives are real zip files built here (small JPEG/PNG pairs made with PIL); weights are a real
state dict in the original MiT-B0 layout, written with torch.save. gdown is exercised for real,
pointed at the loopback server (it fetches any URL, not only Drive links).
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_http import FileRoute, LoopbackServer
from PIL import Image

from ssformer.commands import download as download_command
from ssformer.data import download, sources
from ssformer.data.archives import safe_extract
from ssformer.errors import CheckpointError, DataError, DownloadError
from ssformer.models import zoo
from ssformer.registry import WEIGHT_NAMES

STEMS = ("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4", "cju0s690hkp960855tjuaqvv0")
HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"


def _jpeg(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (seed * 40 % 256, 90, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (24, 16), 255 if seed % 2 else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def kvasir_zip(extra: dict[str, bytes] | None = None) -> bytes:
    """A Kvasir-SEG release in miniature: ``Kvasir-SEG/{images,masks}/*.jpg``."""
    members = {"Kvasir-SEG/kavsir_bboxes.json": b"{}"}
    for index, stem in enumerate(STEMS):
        members[f"Kvasir-SEG/images/{stem}.jpg"] = _jpeg(index)
        members[f"Kvasir-SEG/masks/{stem}.jpg"] = _jpeg(index + 7)
    # Large enough (uncompressed noise) that a connection cut in the middle leaves real work.
    members["Kvasir-SEG/padding.bin"] = os.urandom(200_000)
    members.update(extra or {})
    return _zip(members)


def _files_under(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer(max_requests=12) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # the Hub fallback must never leave this machine: a closed port unless a test serves it
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


def run_cli(argv: list[str]) -> int:
    """Parse ``argv`` with the ``download`` command alone and run it (as ``ssformer`` would)."""
    parser = argparse.ArgumentParser(prog="ssformer")
    download_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _kvasir(root: Path, url: str, **options: object) -> Path:
    return download.download_kvasir(
        root, url=url, expected=len(STEMS), backoff=0.001, timeout=10, quiet=True, **options
    )


def _assert_kvasir(target: Path) -> None:
    assert sorted(p.name for p in (target / "images").iterdir()) == [f"{s}.jpg" for s in STEMS]
    assert sorted(p.name for p in (target / "masks").iterdir()) == [f"{s}.jpg" for s in STEMS]
    for path in (target / "images").iterdir():
        with Image.open(path) as image:
            assert image.size == (24, 16)


# ------------------------------------------------------------------------------ Kvasir over HTTP


def test_good_zip_gives_normalised_dataset_and_second_run_is_skipped(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.routes["/kvasir-seg.zip"] = FileRoute(kvasir_zip())
    root = tmp_path / "data"
    target = _kvasir(root, server.url("/kvasir-seg.zip"))
    assert target == root / "Kvasir-SEG"
    _assert_kvasir(target)
    # the archive, its .part file and the staging folder are gone
    assert sorted(p.name for p in root.iterdir()) == ["Kvasir-SEG"]
    assert server.request_count == 1
    assert _kvasir(root, server.url("/kvasir-seg.zip")) == target
    assert server.request_count == 1  # complete data set: nothing fetched


def test_url_comes_from_environment(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/mirror.zip"] = FileRoute(kvasir_zip())
    monkeypatch.setenv(sources.KVASIR_URL_ENV, server.url("/mirror.zip"))
    target = download.download_kvasir(tmp_path, expected=3, quiet=True)
    _assert_kvasir(target)


def test_truncated_zip_is_refused_and_leaves_nothing(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body = kvasir_zip()
    server.routes["/kvasir-seg.zip"] = FileRoute(body[: len(body) // 2])
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match="damaged or truncated zip"):
        _kvasir(root, server.url("/kvasir-seg.zip"))
    assert _files_under(root) == []


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_zip_is_refused(
    tmp_path: Path, server: LoopbackServer, content_type: str
) -> None:
    server.routes["/kvasir-seg.zip"] = FileRoute(HTML, content_type=content_type)
    with pytest.raises(DownloadError, match="HTML page"):
        _kvasir(tmp_path, server.url("/kvasir-seg.zip"))
    assert _files_under(tmp_path) == []
    assert server.request_count == 1  # not retried: a web page will not turn into a zip


def test_zip_with_parent_members_is_refused_and_writes_nothing_outside(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body = kvasir_zip({"Kvasir-SEG/../../escaped.txt": b"owned", "../escaped2.txt": b"owned"})
    server.routes["/kvasir-seg.zip"] = FileRoute(body)
    root = tmp_path / "deep" / "data"
    with pytest.raises(DownloadError, match="leaves the extraction folder"):
        _kvasir(root, server.url("/kvasir-seg.zip"))
    assert not list(tmp_path.rglob("escaped*"))
    assert _files_under(root) == []


def test_connection_dropped_mid_file_resumes_with_range(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body = kvasir_zip()
    route = FileRoute(body, drop_after=len(body) // 3)
    server.routes["/kvasir-seg.zip"] = route
    _assert_kvasir(_kvasir(tmp_path, server.url("/kvasir-seg.zip")))
    assert len(route.ranges) == 2 and route.ranges[0] is None
    resumed_at = int(str(route.ranges[1]).removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= len(body) // 3  # only what arrived is kept; the rest is re-fetched


def test_server_ignoring_range_starts_over_and_still_succeeds(
    tmp_path: Path, server: LoopbackServer
) -> None:
    body = kvasir_zip()
    route = FileRoute(body, drop_after=len(body) // 3, honour_range=False)
    server.routes["/kvasir-seg.zip"] = route
    _assert_kvasir(_kvasir(tmp_path, server.url("/kvasir-seg.zip")))
    assert route.calls == 2 and str(route.ranges[1]).startswith("bytes=")  # asked, got 200


def test_partial_file_of_an_earlier_run_is_resumed(tmp_path: Path, server: LoopbackServer) -> None:
    body = kvasir_zip()
    route = FileRoute(body)
    server.routes["/kvasir-seg.zip"] = route
    (tmp_path / "kvasir-seg.zip.part").write_bytes(body[:1000])
    _assert_kvasir(_kvasir(tmp_path, server.url("/kvasir-seg.zip")))
    assert route.ranges == ["bytes=1000-"]


def test_503_twice_then_success(tmp_path: Path, server: LoopbackServer) -> None:
    route = FileRoute(kvasir_zip(), fail_first=2, fail_status=503)
    server.routes["/kvasir-seg.zip"] = route
    _assert_kvasir(_kvasir(tmp_path, server.url("/kvasir-seg.zip")))
    assert route.calls == 3


def test_persistent_503_gives_up_after_the_retries(tmp_path: Path, server: LoopbackServer) -> None:
    route = FileRoute(kvasir_zip(), fail_first=100, fail_status=503)
    server.routes["/kvasir-seg.zip"] = route
    with pytest.raises(DownloadError, match="failed 3 times; last: HTTP 503"):
        _kvasir(tmp_path, server.url("/kvasir-seg.zip"), retries=2)
    assert route.calls == 3
    assert _files_under(tmp_path) == []


def test_404_is_not_retried(tmp_path: Path, server: LoopbackServer) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        _kvasir(tmp_path, server.url("/missing.zip"))
    assert server.request_count == 1


def test_wrong_count_names_found_and_expected(tmp_path: Path, server: LoopbackServer) -> None:
    server.routes["/kvasir-seg.zip"] = FileRoute(kvasir_zip())
    with pytest.raises(DataError, match=r"found 3 image/mask pairs .* expected 1000"):
        download.download_kvasir(tmp_path, url=server.url("/kvasir-seg.zip"), quiet=True)
    assert _files_under(tmp_path) == []


def test_existing_different_folder_is_never_overwritten(
    tmp_path: Path, server: LoopbackServer
) -> None:
    server.routes["/kvasir-seg.zip"] = FileRoute(kvasir_zip())
    mine = tmp_path / "Kvasir-SEG" / "images" / "mine.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"user data")
    with pytest.raises(DataError, match="never overwritten"):
        _kvasir(tmp_path, server.url("/kvasir-seg.zip"))
    assert mine.read_bytes() == b"user data"
    assert server.request_count == 0


def test_cli_data_command_reports_count_error(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.routes["/kvasir-seg.zip"] = FileRoute(kvasir_zip())
    monkeypatch.setenv(sources.KVASIR_URL_ENV, server.url("/kvasir-seg.zip"))
    with pytest.raises(DataError, match="expected 1000"):
        run_cli(["download", "data", "kvasir-seg", "--dir", str(tmp_path), "--quiet"])
    assert _files_under(tmp_path) == []
    with pytest.raises(SystemExit):
        run_cli(["download", "weights", "mit-b9"])


# --------------------------------------------------------------------------- safe extraction


def test_safe_extract_refuses_absolute_and_symlink_members(tmp_path: Path) -> None:
    absolute = tmp_path / "absolute.zip"
    absolute.write_bytes(_zip({"/tmp/ssformer-absolute.txt": b"x", "ok.txt": b"y"}))
    with pytest.raises(DownloadError, match="leaves the extraction folder"):
        safe_extract(absolute, tmp_path / "out")
    assert not (tmp_path / "out").exists()

    link = tmp_path / "link.zip"
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("images/evil")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(DownloadError, match="symbolic link"):
        safe_extract(link, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["absolute.zip", "link.zip"]


def test_safe_extract_good_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"x/y.txt": b"hello", "z.txt": b"!"}))
    target = safe_extract(archive, tmp_path / "out")
    assert (target / "x" / "y.txt").read_bytes() == b"hello"
    with pytest.raises(DownloadError, match="already exists"):
        safe_extract(archive, target)


# ----------------------------------------------------------------- CVC-ClinicDB and Kaggle


def _clear_kaggle(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_API_TOKEN",
        "KAGGLE_CONFIG_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(name, raising=False)


def test_kaggle_without_credentials_explains_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_kaggle(monkeypatch, tmp_path / "home")
    with pytest.raises(DownloadError) as caught:
        download.download_cvc_clinicdb(tmp_path / "data", quiet=True)
    message = str(caught.value)
    assert "~/.kaggle/kaggle.json" in message and "KAGGLE_USERNAME" in message
    assert "kaggle.com" in message and str(tmp_path / "data" / "cvcclinicdb.zip") in message
    assert not (tmp_path / "home" / ".kaggle").exists()  # kaggle was not imported
    assert not (tmp_path / "data" / "CVC-ClinicDB").exists()


def test_kaggle_key_is_never_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_kaggle(monkeypatch, tmp_path / "home")
    secret = "5f1e8b0c0ffee0ddba11c0de5ec7e700"
    monkeypatch.setenv("KAGGLE_KEY", secret)
    with pytest.raises(DownloadError) as caught:
        run_cli(["download", "data", "cvc-clinicdb", "--dir", str(tmp_path / "data")])
    captured = capsys.readouterr()
    assert "KAGGLE_USERNAME is not" in str(caught.value)
    assert secret not in captured.out + captured.err + str(caught.value)


def test_cvc_from_an_archive_already_in_place_needs_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_kaggle(monkeypatch, tmp_path / "home")
    members = {}
    for index in range(1, 5):
        members[f"PNG/Original/{index}.png"] = _png(index)
        members[f"PNG/Ground Truth/{index}.png"] = _png(index + 1)
        members[f"TIF/Original/{index}.tif"] = b"not used"
    root = tmp_path / "data"
    root.mkdir()
    (root / "cvcclinicdb.zip").write_bytes(_zip(members))
    target = download.download_cvc_clinicdb(root, expected=4, quiet=True)
    assert sorted(p.name for p in (target / "images").iterdir()) == [
        f"{i}.png" for i in range(1, 5)
    ]
    assert sorted(p.name for p in (target / "masks").iterdir()) == [f"{i}.png" for i in range(1, 5)]
    assert (root / "cvcclinicdb.zip").exists()  # the user's archive is kept
    assert sorted(p.name for p in root.iterdir()) == ["CVC-ClinicDB", "cvcclinicdb.zip"]


# --------------------------------------------------------------------------- PraNet via gdown


def test_pranet_through_gdown_keeps_layout_and_checks_counts(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # gdown's cookie file
    members = {}
    for index in range(3):
        members[f"polyp/TrainDataset/image/{index}.png"] = _png(index)
        members[f"polyp/TrainDataset/mask/{index}.png"] = _png(index)
    tests = {"Kvasir": 2, "CVC-ClinicDB": 1, "CVC-ColonDB": 1, "ETIS-LaribPolypDB": 1, "CVC-300": 1}
    for name, count in tests.items():
        for index in range(count):
            members[f"polyp/TestDataset/{name}/images/{index}.png"] = _png(index)
            members[f"polyp/TestDataset/{name}/masks/{index}.png"] = _png(index)
    server.routes["/pranet.zip"] = FileRoute(_zip(members), content_type="application/zip")
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"found 3 image/mask pairs .* expected 1450"):
        download.download_pranet(root, url=server.url("/pranet.zip"), quiet=True)
    assert _files_under(root) == []
    target = download.download_pranet(
        root, url=server.url("/pranet.zip"), train_count=3, test_counts=tests, quiet=True
    )
    assert (target / "TrainDataset" / "image" / "2.png").is_file()
    assert (target / "TestDataset" / "CVC-300" / "masks" / "0.png").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["PraNet"]


# ------------------------------------------------------------------------------------ weights


def mit_b0_original_state_dict() -> dict[str, object]:
    """MiT-B0 ImageNet weights as the original SegFormer code names them (random values)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    dims, sr_ratios, kernels = (32, 64, 160, 256), (8, 4, 2, 1), (7, 3, 3, 3)
    state: dict[str, object] = {}

    def put(key: str, *shape: int) -> None:
        state[key] = torch.randn(*shape, generator=generator) * 0.02

    previous = 3
    for stage, (dim, sr, kernel) in enumerate(zip(dims, sr_ratios, kernels, strict=True), 1):
        put(f"patch_embed{stage}.proj.weight", dim, previous, kernel, kernel)
        put(f"patch_embed{stage}.proj.bias", dim)
        put(f"patch_embed{stage}.norm.weight", dim)
        put(f"patch_embed{stage}.norm.bias", dim)
        for block in range(2):
            prefix = f"block{stage}.{block}."
            for norm in ("norm1", "norm2"):
                put(prefix + f"{norm}.weight", dim)
                put(prefix + f"{norm}.bias", dim)
            put(prefix + "attn.q.weight", dim, dim)
            put(prefix + "attn.q.bias", dim)
            put(prefix + "attn.kv.weight", 2 * dim, dim)
            put(prefix + "attn.kv.bias", 2 * dim)
            put(prefix + "attn.proj.weight", dim, dim)
            put(prefix + "attn.proj.bias", dim)
            if sr > 1:
                put(prefix + "attn.sr.weight", dim, dim, sr, sr)
                put(prefix + "attn.sr.bias", dim)
                put(prefix + "attn.norm.weight", dim)
                put(prefix + "attn.norm.bias", dim)
            put(prefix + "mlp.fc1.weight", 4 * dim, dim)
            put(prefix + "mlp.fc1.bias", 4 * dim)
            put(prefix + "mlp.dwconv.dwconv.weight", 4 * dim, 1, 3, 3)
            put(prefix + "mlp.dwconv.dwconv.bias", 4 * dim)
            put(prefix + "mlp.fc2.weight", dim, 4 * dim)
            put(prefix + "mlp.fc2.bias", dim)
        put(f"norm{stage}.weight", dim)
        put(f"norm{stage}.bias", dim)
        previous = dim
    put("head.weight", 1000, dims[-1])
    put("head.bias", 1000)
    return state


@pytest.fixture(scope="module")
def mit_b0_bytes() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(mit_b0_original_state_dict(), buffer)
    return buffer.getvalue()


def test_weights_download_through_gdown_checks_and_installs(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, mit_b0_bytes: bytes
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    server.routes["/mit_b0.pth"] = FileRoute(mit_b0_bytes, content_type="application/octet-stream")
    urls = {"mit-b0": server.url("/mit_b0.pth")}
    root = tmp_path / "project"
    paths = zoo.download_weights(["mit-b0"], root, urls=urls, quiet=True)
    final = root / "checkpoints" / "backbones" / "mit" / "mit_b0.pth"
    assert paths == [final]
    assert final.read_bytes() == mit_b0_bytes
    assert sorted(p.name for p in final.parent.iterdir()) == ["mit_b0.pth"]
    assert zoo.download_weights(["mit-b0"], root, urls=urls, quiet=True) == [final]
    assert server.request_count == 1  # present and valid: not fetched again


def test_weights_html_page_is_discarded_with_manual_link_and_second_source(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))  # serves no Hub file: 404
    server.routes["/mit_b0.pth"] = FileRoute(HTML * 50, content_type="application/octet-stream")
    root = tmp_path / "project"
    with pytest.raises(DownloadError) as caught:
        zoo.download_weights(
            ["mit-b0"], root, urls={"mit-b0": server.url("/mit_b0.pth")}, quiet=True
        )
    message = str(caught.value)
    assert "HTML page" in message
    assert zoo.WEIGHTS["mit-b0"].url in message and "nvidia/mit-b0" in message
    assert "second source failed too" in message and "404" in message
    assert _files_under(root / "checkpoints" / "backbones" / "mit") == []


def _hub_route(server: LoopbackServer, repo: str, filename: str, body: bytes) -> None:
    route = FileRoute(body, content_type="application/octet-stream")
    server.routes[f"/{repo}/resolve/main/{filename}"] = route


def test_drive_quota_falls_back_to_the_hub_copy_of_mit(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from helpers_hub import original_to_transformers

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    original = mit_b0_original_state_dict()
    buffer = io.BytesIO()
    torch.save(original_to_transformers(original), buffer)
    _hub_route(server, "nvidia/mit-b0", "pytorch_model.bin", buffer.getvalue())
    server.routes["/mit_b0.pth"] = FileRoute(HTML * 50, content_type="application/octet-stream")
    root = tmp_path / "project"
    (final,) = zoo.download_weights(
        ["mit-b0"], root, urls={"mit-b0": server.url("/mit_b0.pth")}, quiet=True
    )
    assert sorted(p.name for p in final.parent.iterdir()) == ["mit_b0.pth"]
    saved = torch.load(final, weights_only=True)
    expected = {k: v for k, v in original.items() if not k.startswith("head.")}
    assert saved.keys() == expected.keys()  # the original layout, classifier dropped
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    zoo.validate_weights(final, zoo.WEIGHTS["mit-b0"])


def test_hub_copy_of_pvtv2_is_a_timm_safetensors_file(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import save

    from ssformer.models import build_backbone
    from ssformer.models.layouts import export_state_dict

    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    source = build_backbone("PVTv2-B1")
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    state["head.weight"] = torch.zeros(1000, 512)
    _hub_route(server, "timm/pvt_v2_b1.in1k", "model.safetensors", save(state))
    final = tmp_path / "checkpoints" / "backbones" / "pvtv2" / "pvt_v2_b1.pth"
    final.parent.mkdir(parents=True)
    assert zoo.hf_url(zoo.WEIGHTS["pvtv2-b1"]) == server.url(
        "/timm/pvt_v2_b1.in1k/resolve/main/model.safetensors"
    )
    zoo.fetch_from_hub(zoo.WEIGHTS["pvtv2-b1"], final, what="pvtv2-b1", quiet=True)
    saved = torch.load(final, weights_only=True)
    expected = export_state_dict(source, "imagenet")
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)
    assert sorted(p.name for p in final.parent.iterdir()) == ["pvt_v2_b1.pth"]


def test_hub_file_that_does_not_load_is_deleted_and_reported(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.url(""))
    _hub_route(server, "nvidia/mit-b0", "pytorch_model.bin", HTML)
    final = tmp_path / "mit_b0.pth"
    with pytest.raises(
        DownloadError, match=r"nvidia/mit-b0/resolve/main/pytorch_model\.bin .*HTML"
    ):
        zoo.fetch_from_hub(zoo.WEIGHTS["mit-b0"], final, what="mit-b0", quiet=True)
    assert _files_under(tmp_path) == []


def test_html_saved_as_pth_by_an_earlier_run_is_removed_then_replaced(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, mit_b0_bytes: bytes
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    server.routes["/mit_b0.pth"] = FileRoute(mit_b0_bytes, content_type="application/octet-stream")
    folder = tmp_path / "checkpoints" / "backbones" / "mit"
    folder.mkdir(parents=True)
    (folder / "mit_b0.pth.download").write_bytes(HTML)
    zoo.download_weights(
        ["mit-b0"], tmp_path, urls={"mit-b0": server.url("/mit_b0.pth")}, quiet=True
    )
    assert sorted(p.name for p in folder.iterdir()) == ["mit_b0.pth"]
    assert (folder / "mit_b0.pth").read_bytes() == mit_b0_bytes


def test_users_invalid_weights_file_is_reported_and_kept(
    tmp_path: Path, server: LoopbackServer, mit_b0_bytes: bytes
) -> None:
    folder = tmp_path / "checkpoints" / "backbones" / "mit"
    folder.mkdir(parents=True)
    (folder / "mit_b0.pth").write_bytes(HTML)
    official = tmp_path / "checkpoints" / "ssformer" / "ssformer_S.pth"
    official.parent.mkdir(parents=True)
    official.write_bytes(mit_b0_bytes[:1000])  # a cut-off file
    with pytest.raises(DownloadError) as caught:
        zoo.download_weights(["mit-b0", "ssformer-s"], tmp_path, quiet=True)
    message = str(caught.value)
    assert "2 of 2 weight file(s) failed" in message and "never overwritten" in message
    assert (folder / "mit_b0.pth").read_bytes() == HTML
    assert official.read_bytes() == mit_b0_bytes[:1000]
    assert server.request_count == 0


def test_validate_weights_rejects_html_before_loading(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\n  " + HTML)
    with pytest.raises(CheckpointError, match="HTML page"):
        zoo.validate_weights(bad, zoo.WEIGHTS["mit-b0"])


def test_weight_table_covers_every_name() -> None:
    names = [s.name for s in zoo.resolve_weight_names(["all"])]
    assert names == [f"mit-b{i}" for i in range(6)] + [f"pvtv2-b{i}" for i in range(6)] + [
        "ssformer-s",
        "ssformer-l",
    ]
    assert tuple(zoo.WEIGHTS) == WEIGHT_NAMES  # the registry names every weight the zoo has
    assert zoo.WEIGHTS["pvtv2-b2"].filename == "pvt_v2_b2.pth"
    assert zoo.WEIGHTS["ssformer-l"].backbone == "MiT-B4"
    assert "timm/pvt_v2_b3.in1k" in (zoo.WEIGHTS["pvtv2-b3"].alternative or "")
    with pytest.raises(DownloadError, match="unknown weights"):
        zoo.resolve_weight_names(["mit-b9"])


def test_safe_extract_tar_refuses_links_and_extracts_good_members(tmp_path: Path) -> None:
    import tarfile

    def tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"abc") -> Path:
        with tarfile.open(path, "w:gz") as archive:
            for member in members:
                if member.isfile():
                    member.size = len(data)
                    archive.addfile(member, io.BytesIO(data))
                else:
                    archive.addfile(member)
        return path

    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DownloadError, match="a link"):
        safe_extract(
            tar(tmp_path / "link.tar.gz", [tarfile.TarInfo("ok.txt"), link]), tmp_path / "a"
        )
    with pytest.raises(DownloadError, match="leaves the extraction folder"):
        safe_extract(tar(tmp_path / "up.tar.gz", [tarfile.TarInfo("../up.txt")]), tmp_path / "b")
    good = safe_extract(
        tar(tmp_path / "good.tar.gz", [tarfile.TarInfo("d/ok.txt")]), tmp_path / "c"
    )
    assert (good / "d" / "ok.txt").read_bytes() == b"abc"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not (tmp_path / "up.txt").exists()


def test_unresolvable_host_fails_at_once_with_the_manual_path(tmp_path: Path) -> None:
    """A DNS failure (no network) is not retried five times: it names where to put the file.
    (``.invalid`` never resolves: RFC 2606.)"""
    from ssformer.io.http import http_download

    sleeps: list[float] = []
    target = tmp_path / "kvasir-seg.zip"
    with pytest.raises(DownloadError, match="does not resolve") as raised:
        http_download("http://kvasir-seg.invalid/x.zip", target, quiet=True, sleep=sleeps.append)
    assert sleeps == []  # no retry
    assert str(target) in str(raised.value)
