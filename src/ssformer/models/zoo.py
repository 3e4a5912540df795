"""The weight zoo: where every published checkpoint lives, and how it is fetched and checked.

One typed table (:data:`WEIGHTS`) of the ImageNet MiT / PVTv2 backbones and the official SSFormer
checkpoints, with their Google Drive IDs (those of the SSFormer paper's repository, Wang et al.,
MICCAI 2022, and of the reproduction study's notebook). Drive links die and hit quotas, so every
entry carries the manual link to open in a browser and, where one exists, a second source on the
Hugging Face Hub (``hf_repo`` / ``hf_filename``), which :func:`fetch_weight` tries when Drive
fails (PVTv2-B0 has no Drive copy: the Hub's timm copy is its first source); the Hub copy is loaded strictly (which converts its key layout) and saved in the original
layout.

Nothing is written where a valid file is expected until it has been checked: a download is
loaded as a state dict of the expected backbone or model and only then renamed into place.
Existing files that do not load are never overwritten or deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ssformer.errors import CheckpointError, DownloadError
from ssformer.io.atomic import save_torch_atomic
from ssformer.io.drive import DRIVE_URL, drive_download, drive_help
from ssformer.io.http import http_download
from ssformer.io.messages import note
from ssformer.models.factories import build_backbone, verify_backbone_file, verify_model_file
from ssformer.models.layouts import export_state_dict
from ssformer.models.loading import load_weights

__all__ = [
    "HF_ENDPOINT",
    "HF_ENDPOINT_ENV",
    "WEIGHTS",
    "WeightSource",
    "download_weights",
    "fetch_from_hub",
    "fetch_weight",
    "hf_url",
    "resolve_weight_names",
    "validate_weights",
    "weight_path",
]

#: The Hugging Face Hub; ``$HF_ENDPOINT`` replaces it (a mirror, as for huggingface_hub).
HF_ENDPOINT = "https://huggingface.co"
HF_ENDPOINT_ENV = "HF_ENDPOINT"


@dataclass(frozen=True)
class WeightSource:
    """One downloadable checkpoint.

    ``model`` is ``None`` for an ImageNet backbone and the model name (``SSFormer``) for a full
    segmentation checkpoint; ``subdir`` is relative to ``<root>/checkpoints``.
    """

    name: str
    filename: str
    subdir: str
    drive_id: str | None
    backbone: str
    model: str | None = None
    alternative: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None

    @property
    def url(self) -> str:
        """The link to open by hand: the Drive download link, or the Hub page of a checkpoint
        published only there (``drive_id`` is ``None``)."""
        if self.drive_id is None:
            return f"{HF_ENDPOINT}/{self.hf_repo}"
        return DRIVE_URL.format(drive_id=self.drive_id)


_OFFICIAL_REPO = "https://github.com/Qiming-Huang/ssformer"
#: The PVT authors' own release of PVTv2-B0 (the original layout; no Drive copy exists).
_PVT_RELEASE = "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b0.pth"


def _mit(index: int, drive_id: str) -> WeightSource:
    return WeightSource(
        name=f"mit-b{index}",
        filename=f"mit_b{index}.pth",
        subdir="backbones/mit",
        drive_id=drive_id,
        backbone=f"MiT-B{index}",
        alternative=(
            f"Hugging Face Hub 'nvidia/mit-b{index}' (the same ImageNet MiT encoder in the "
            f"transformers SegFormer key layout, converted on download: "
            f"{HF_ENDPOINT}/nvidia/mit-b{index})"
        ),
        hf_repo=f"nvidia/mit-b{index}",
        hf_filename="pytorch_model.bin",
    )


def _pvtv2(index: int, drive_id: str | None) -> WeightSource:
    hub = (
        f"Hugging Face Hub 'timm/pvt_v2_b{index}.in1k' (timm's copy of the ImageNet "
        f"weights, a safetensors file in timm's key layout, converted on download: "
        f"{HF_ENDPOINT}/timm/pvt_v2_b{index}.in1k)"
    )
    return WeightSource(
        name=f"pvtv2-b{index}",
        filename=f"pvt_v2_b{index}.pth",
        subdir="backbones/pvtv2",
        drive_id=drive_id,
        backbone=f"PVTv2-B{index}",
        alternative=hub if drive_id is not None else f"the PVT authors' file {_PVT_RELEASE}",
        hf_repo=f"timm/pvt_v2_b{index}.in1k",
        hf_filename="model.safetensors",
    )


WEIGHTS: dict[str, WeightSource] = {
    source.name: source
    for source in (
        _mit(0, "1EyaZVdbezIJsj8LviM7GaIBto46a1N-Z"),
        _mit(1, "1L8NYh3LOSGf7xNm7TsZVXURbYYfeJVKh"),
        _mit(2, "1m8fsG812o6KotF1NVo0YuiSfSn18TAOA"),
        _mit(3, "1d3wU8KNjPL4EqMCIEO_rO-O3-REpG82T"),
        _mit(4, "1BUtU42moYrOFbsMCE-LTTkUE-mrWnfG2"),
        _mit(5, "1d7I50jVjtCddnhpf-lqj8-f13UyCzoW1"),
        _pvtv2(0, None),  # no Drive copy: the Hub's timm copy is the source
        _pvtv2(1, "1LsG_OBji73Iay8fR-gBRKxHVA0GUsSoR"),
        _pvtv2(2, "1eDCLaB0G24H3IBRLlIfM4Xg7kBW8MBx_"),
        _pvtv2(3, "1VttlOsYpArGyiNDX9v3nVBnEwpgeJE-k"),
        _pvtv2(4, "1lvHYBBrj4zLkx1hnVJu2EGxBVCLWg3_j"),
        _pvtv2(5, "1xAVfI0rnZAFsQA357r9ZavhpwktGV6AW"),
        WeightSource(
            name="ssformer-s",
            filename="ssformer_S.pth",
            subdir="ssformer",
            drive_id="1CdX0K1_ZDMrEVGK2cmBfp33lYxLEBwlw",
            backbone="MiT-B2",
            model="SSFormer",
            alternative=f"no mirror is known; the official repository {_OFFICIAL_REPO} links it",
        ),
        WeightSource(
            name="ssformer-l",
            filename="ssformer_L.pth",
            subdir="ssformer",
            drive_id="1CEwUOPm1otoEGfXSvcX-y1x80583-Q9C",
            backbone="MiT-B4",
            model="SSFormer",
            alternative=f"no mirror is known; the official repository {_OFFICIAL_REPO} links it",
        ),
    )
}


def weight_path(source: WeightSource, root: Path | str = ".") -> Path:
    """Where ``source`` lives under ``root``: ``checkpoints/<subdir>/<filename>``."""
    return Path(root) / "checkpoints" / source.subdir / source.filename


def validate_weights(path: Path, source: WeightSource) -> None:
    """Raise :class:`CheckpointError` unless ``path`` loads as ``source``'s state dict (an HTML
    page saved in its place is named as such by the checkpoint reader)."""
    if source.model is None:
        verify_backbone_file(path, source.backbone)
    else:
        verify_model_file(path, source.model, source.backbone)


def resolve_weight_names(names: Iterable[str]) -> list[WeightSource]:
    """Map CLI names (and ``all``) to sources, in order, without duplicates."""
    chosen: list[WeightSource] = []
    for name in names:
        key = name.lower()
        if key == "all":
            picked = list(WEIGHTS.values())
        elif key in WEIGHTS:
            picked = [WEIGHTS[key]]
        else:
            raise DownloadError(
                f"unknown weights {name!r}; choose from {', '.join(WEIGHTS)} or 'all'."
            )
        chosen.extend(source for source in picked if source not in chosen)
    return chosen


def fetch_weight(
    source: WeightSource,
    root: Path | str = ".",
    *,
    url: str | None = None,
    quiet: bool = False,
) -> Path:
    """Download, check and install one checkpoint; return its path.

    A valid file already in place is kept. A file in place that does not load is never
    replaced: the error says to move it away. The download goes to ``<file>.download``, is
    loaded as a state dict of ``source.backbone`` and only then renamed to ``<file>``; a file
    that fails the check is deleted (it is ours) and reported with the manual link.
    """
    final = weight_path(source, root)
    what = f"{source.name} ({source.backbone}{' ' + source.model if source.model else ''})"
    if final.exists():
        try:
            validate_weights(final, source)
        except CheckpointError as error:
            raise CheckpointError(
                f"{final} exists but is not valid {what} weights ({error}). It is never "
                "overwritten: move or delete it and run the command again."
            ) from error
        note(f"{source.name}: {final} is already present and valid", quiet)
        return final
    tmp = final.with_name(final.name + ".download")
    if tmp.exists():  # a download of an earlier run that ended before its check
        try:
            validate_weights(tmp, source)
        except CheckpointError:
            tmp.unlink()
        else:
            os.replace(tmp, final)
            note(f"{source.name}: saved {final} (downloaded by an earlier run)", quiet)
            return final
    if source.drive_id is None:  # no Drive copy: the Hub is the first source
        try:
            fetch_from_hub(source, final, what=what, quiet=quiet, url=url)
        except DownloadError as error:
            raise DownloadError(
                f"{error}\nOpen {source.url} by hand, or download {source.alternative}, and "
                f"save the file as {final}"
            ) from error
        note(f"{source.name}: saved {final}", quiet)
        return final
    try:
        _fetch_from_drive(source, final, url=url or source.url, what=what, quiet=quiet)
    except DownloadError as drive_error:
        hub = hf_url(source)
        if hub is None:
            raise
        note(f"{source.name}: Google Drive failed; trying the second source {hub}", quiet)
        try:
            fetch_from_hub(source, final, what=what, quiet=quiet)
        except (DownloadError, CheckpointError) as hub_error:
            raise DownloadError(
                f"{drive_error}\nThe second source failed too: {hub_error}"
            ) from hub_error
    note(f"{source.name}: saved {final}", quiet)
    return final


def _fetch_from_drive(
    source: WeightSource, final: Path, *, url: str, what: str, quiet: bool
) -> None:
    tmp = drive_download(
        url, final, what=what, manual_url=source.url, alternative=source.alternative, quiet=quiet
    )
    try:
        validate_weights(tmp, source)
    except CheckpointError as error:
        tmp.unlink()
        raise DownloadError(
            f"The file downloaded for {what} is not valid and was deleted: {error} "
            + drive_help(source.url, final, source.alternative)
        ) from error
    os.replace(tmp, final)


def hf_url(source: WeightSource, environ: Mapping[str, str] | None = None) -> str | None:
    """The download link of ``source``'s Hugging Face Hub copy (``None`` if it has none);
    ``$HF_ENDPOINT`` replaces ``https://huggingface.co``."""
    if not (source.hf_repo and source.hf_filename):
        return None
    env = os.environ if environ is None else environ
    endpoint = (env.get(HF_ENDPOINT_ENV) or HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{source.hf_repo}/resolve/main/{source.hf_filename}"


def fetch_from_hub(
    source: WeightSource, final: Path, *, what: str, quiet: bool = False, url: str | None = None
) -> Path:
    """Download ``source``'s Hugging Face Hub copy (or ``url``, a mirror of it), load it
    strictly into its backbone (which converts the key layout) and write it to ``final`` in the
    original MiT/PVTv2 layout.

    The download goes to ``<final>.hub`` (resumable ``.part`` while it runs) and is deleted once
    converted, or when it does not load; ``final`` appears only complete (temp file + rename).
    """
    url = url or hf_url(source)
    if url is None:
        raise DownloadError(f"{what} has no second source on the Hugging Face Hub")
    raw = final.with_name(final.name + ".hub")
    http_download(url, raw, expect_zip=False, retries=3, quiet=quiet)
    backbone = build_backbone(source.backbone)
    try:
        load_weights(backbone, raw)
    except CheckpointError as error:
        raw.unlink()
        raise DownloadError(
            f"The file downloaded from {url} for {what} is not valid and was deleted: {error}"
        ) from error
    save_torch_atomic(export_state_dict(backbone, "imagenet"), final)
    raw.unlink()
    note(f"{source.name}: converted {source.hf_repo} to the original layout", quiet)
    return final


def download_weights(
    names: Iterable[str],
    root: Path | str = ".",
    *,
    urls: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> list[Path]:
    """Download weights by CLI name (``mit-b0``..``mit-b5``, ``pvtv2-b0``..``pvtv2-b5``,
    ``ssformer-s``, ``ssformer-l``, ``all``) into ``<root>/checkpoints``.

    Every name is tried; if any failed, one :class:`DownloadError` lists all failures after the
    others are in place. ``urls`` overrides the download link per name (mirrors, tests).
    """
    chosen = resolve_weight_names(names)
    done: list[Path] = []
    failures: list[str] = []
    for source in chosen:
        try:
            done.append(fetch_weight(source, root, url=(urls or {}).get(source.name), quiet=quiet))
        except (DownloadError, CheckpointError) as error:
            failures.append(f"- {source.name}: {error}")
    if failures:
        saved = f" ({len(done)} other file(s) are in place.)" if done else ""
        raise DownloadError(
            f"{len(failures)} of {len(chosen)} weight file(s) failed.{saved}\n"
            + "\n".join(failures)
        )
    return done
