"""The reproduction study's trained weights (``ssformer download weights study-kvasir``).

Tested offline: the file check (each file loaded strictly into the model its name says) and the
installation, on checkpoints built here in the study's key layout; and the whole command with
gdown's real folder download against a stand-in for Google Drive on 127.0.0.1
(:mod:`helpers_drive`: reached as an HTTPS proxy, with a certificate made by ``openssl``), which
serves a folder listing page of the form gdown parses today and the files.

Not tested offline: Google Drive itself (the form of its real listing page, which gdown follows
as it changes, quotas) and the contents of the study's real folders (their file names and key
layouts); those only show online, with
``ssformer download weights study-kvasir study-cvc-clinicdb``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
import torch
from helpers_drive import DriveFolder, FakeDrive, openssl_available

import ssformer
from ssformer.commands import download as download_command
from ssformer.errors import CheckpointError, DownloadError
from ssformer.models import study_zoo
from ssformer.models.layouts import export_state_dict

HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"


_MADE: dict[tuple[str, str, int], bytes] = {}


def study_file(path: Path, name: str, backbone: str, seed: int = 0) -> Path:
    """A checkpoint as the study saves it: ``torch.save(model.state_dict())``, 2 classes."""
    key = (name, backbone, seed)
    if key not in _MADE:  # building models is the slow part: once per kind
        torch.manual_seed(seed)
        model = ssformer.build_model(name, backbone, num_classes=2)
        buffer = io.BytesIO()
        torch.save(export_state_dict(model, "study"), buffer)
        _MADE[key] = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_MADE[key])
    return path


def test_file_names_say_the_model() -> None:
    assert study_zoo.study_file_model("SegFormer_MiT-B1_Kvasir.pth") == ("SegFormer", "MiT-B1")
    assert study_zoo.study_file_model("PLDSegFormer_MiT-B3_CVCClinicDB.pth") == (
        "PLDSegFormer",
        "MiT-B3",
    )
    assert study_zoo.study_file_model("pldsegformer_mit-b0_Kvasir.pth") == (
        "PLDSegFormer",
        "MiT-B0",
    )
    assert study_zoo.study_file_model("SegFormer_MiT-B9_Kvasir.pth") is None
    assert study_zoo.study_file_model("UNet_MiT-B1_Kvasir.pth") is None
    assert study_zoo.study_file_model("weights.pth") is None


def test_check_loads_each_file_into_the_model_its_name_says(tmp_path: Path) -> None:
    good = study_file(tmp_path / "PLDSegFormer_MiT-B0_Kvasir.pth", "PLDSegFormer", "MiT-B0")
    assert study_zoo.check_study_file(good) == ("PLDSegFormer", "MiT-B0")
    # the same weights under the name of another head or backbone: refused, naming the keys
    wrong_head = tmp_path / "SegFormer_MiT-B0_Kvasir.pth"
    wrong_head.write_bytes(good.read_bytes())
    with pytest.raises(CheckpointError):
        study_zoo.check_study_file(wrong_head)
    wrong_backbone = tmp_path / "PLDSegFormer_MiT-B1_Kvasir.pth"
    wrong_backbone.write_bytes(good.read_bytes())
    with pytest.raises(CheckpointError):
        study_zoo.check_study_file(wrong_backbone)
    page = tmp_path / "SegFormer_MiT-B1_Kvasir.pth"
    page.write_bytes(HTML)
    with pytest.raises(CheckpointError, match="HTML"):
        study_zoo.check_study_file(page)
    anonymous = tmp_path / "best.pth"
    anonymous.write_bytes(good.read_bytes())
    with pytest.raises(CheckpointError, match=r"<NAME>_<BACKBONE>_<DATASET>\.pth"):
        study_zoo.check_study_file(anonymous)


def test_install_moves_files_that_load_and_deletes_downloads_that_do_not(tmp_path: Path) -> None:
    downloaded, target = tmp_path / "download", tmp_path / "Kvasir-SEG"
    segformer = study_file(downloaded / "SegFormer_MiT-B0_Kvasir.pth", "SegFormer", "MiT-B0")
    pld = study_file(
        downloaded / "sub" / "PLDSegFormer_MiT-B0_Kvasir.pth", "PLDSegFormer", "MiT-B0"
    )
    expected = {segformer.name: segformer.read_bytes(), pld.name: pld.read_bytes()}
    (downloaded / "SegFormer_MiT-B1_Kvasir.pth").write_bytes(HTML)  # a quota page
    (downloaded / "notes.txt").write_text("log")
    placed, failures = study_zoo.install_study_files(downloaded, target)
    assert sorted(p.name for p in placed) == sorted(expected)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == expected
    assert len(failures) == 2
    assert any("SegFormer_MiT-B1_Kvasir.pth" in f and "deleted" in f for f in failures)
    assert any("notes.txt" in f for f in failures)
    assert sorted(p.name for p in downloaded.rglob("*") if p.is_file()) == ["notes.txt"]


def test_install_never_overwrites_a_file_in_place_that_does_not_load(tmp_path: Path) -> None:
    downloaded, target = tmp_path / "download", tmp_path / "Kvasir-SEG"
    study_file(downloaded / "SegFormer_MiT-B0_Kvasir.pth", "SegFormer", "MiT-B0")
    target.mkdir()
    (target / "SegFormer_MiT-B0_Kvasir.pth").write_bytes(b"the user's own file")
    placed, failures = study_zoo.install_study_files(downloaded, target)
    assert placed == [] and len(failures) == 1 and "never overwritten" in failures[0]
    assert (target / "SegFormer_MiT-B0_Kvasir.pth").read_bytes() == b"the user's own file"
    # a valid file in place is kept and the download dropped
    good = study_file(tmp_path / "good.pth", "SegFormer", "MiT-B0", seed=3).read_bytes()
    (target / "SegFormer_MiT-B0_Kvasir.pth").write_bytes(good)
    placed, failures = study_zoo.install_study_files(downloaded, target)
    assert failures == [] and placed == [target / "SegFormer_MiT-B0_Kvasir.pth"]
    assert placed[0].read_bytes() == good and not any(downloaded.rglob("*.pth"))


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ssformer")
    download_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_folder_download_that_fails_keeps_what_was_there_and_gives_the_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # gdown's cookie file
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    # Drive is never reached from the tests: every HTTPS request goes to a closed port
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = tmp_path / "checkpoints" / "study" / "Kvasir-SEG"
    # a file the user downloaded by hand, as the message advises
    kept = study_file(target / "SegFormer_MiT-B0_Kvasir.pth", "SegFormer", "MiT-B0")
    before = kept.read_bytes()
    with pytest.raises(DownloadError) as caught:
        _run_cli(["download", "weights", "study-kvasir", "--dir", str(tmp_path), "--quiet"])
    message = str(caught.value)
    assert "gdown's folder download failed" in message
    assert study_zoo.STUDY_FOLDERS["study-kvasir"].url in message and str(target) in message
    assert kept.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["Kvasir-SEG"]  # no leftovers


def test_unknown_folder_name_is_refused() -> None:
    with pytest.raises(DownloadError, match="study-kvasir, study-cvc-clinicdb"):
        study_zoo.download_study_weights("study-polyps")


def _through_fake_drive(monkeypatch: pytest.MonkeyPatch, drive: FakeDrive, home: Path) -> None:
    monkeypatch.setenv("HOME", str(home))  # gdown's cookie file
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", drive.proxy_url)
    monkeypatch.setenv("https_proxy", drive.proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(drive.certificate))


@pytest.mark.skipif(not openssl_available(), reason="needs the openssl command (a certificate)")
def test_gdown_folder_download_installs_the_files_that_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = tmp_path / "made"
    segformer = study_file(made / "a.pth", "SegFormer", "MiT-B0").read_bytes()
    folder = DriveFolder("Kvasir")
    folder.files = {
        "1" + "a" * 32: ("SegFormer_MiT-B0_Kvasir.pth", segformer),
        "1" + "c" * 32: ("SegFormer_MiT-B1_Kvasir.pth", HTML),  # a page saved as the file
    }
    target = tmp_path / "project" / "checkpoints" / "study" / "Kvasir-SEG"
    argv = ["download", "weights", "study-kvasir", "--dir", str(tmp_path / "project"), "--quiet"]
    with FakeDrive(tmp_path) as drive:
        drive.folders[study_zoo.STUDY_FOLDERS["study-kvasir"].drive_id] = folder
        _through_fake_drive(monkeypatch, drive, tmp_path / "home")
        with pytest.raises(DownloadError) as caught:
            _run_cli(argv)
        message = str(caught.value)
        assert "1 file(s) failed (1 in place" in message
        assert "SegFormer_MiT-B1_Kvasir.pth was downloaded but does not load" in message
        assert study_zoo.STUDY_FOLDERS["study-kvasir"].url in message
        assert {p.name: p.read_bytes() for p in target.iterdir()} == {
            "SegFormer_MiT-B0_Kvasir.pth": segformer
        }
        assert any(r.startswith("/embeddedfolderview?id=1-0iBmX13q") for r in drive.requests)
        # the file is fixed on Drive: the next run completes, the files in place are kept
        b1 = study_file(made / "c.pth", "SegFormer", "MiT-B1").read_bytes()
        folder.files["1" + "c" * 32] = ("SegFormer_MiT-B1_Kvasir.pth", b1)
        assert _run_cli(argv) == 0
    assert sorted(p.name for p in target.iterdir()) == [
        "SegFormer_MiT-B0_Kvasir.pth",
        "SegFormer_MiT-B1_Kvasir.pth",
    ]
    assert (target / "SegFormer_MiT-B1_Kvasir.pth").read_bytes() == b1
    assert sorted(p.name for p in target.parent.iterdir()) == ["Kvasir-SEG"]  # no leftovers
