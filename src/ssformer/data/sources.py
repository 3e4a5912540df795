"""Where the published weights and data sets live: one typed table, no logic.

Google Drive IDs are those of the SSFormer paper's repository (Wang et al., MICCAI 2022) and of
the reproduction study's notebook. Drive links die and hit quotas, so every entry carries the
manual link to open in a browser and, where one exists, a second source on the Hugging Face Hub
(``hf_repo`` / ``hf_filename``), which the downloader tries when Drive fails.
"""

from __future__ import annotations

from dataclasses import dataclass

DRIVE_URL = "https://drive.google.com/uc?id={drive_id}"
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
    drive_id: str
    backbone: str
    model: str | None = None
    alternative: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None

    @property
    def url(self) -> str:
        """The Drive download link (also the link to open by hand)."""
        return DRIVE_URL.format(drive_id=self.drive_id)


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


def _pvtv2(index: int, drive_id: str) -> WeightSource:
    return WeightSource(
        name=f"pvtv2-b{index}",
        filename=f"pvt_v2_b{index}.pth",
        subdir="backbones/pvtv2",
        drive_id=drive_id,
        backbone=f"PVTv2-B{index}",
        alternative=(
            f"Hugging Face Hub 'timm/pvt_v2_b{index}.in1k' (timm's copy of the ImageNet "
            f"weights, a safetensors file in timm's key layout, converted on download: "
            f"{HF_ENDPOINT}/timm/pvt_v2_b{index}.in1k)"
        ),
        hf_repo=f"timm/pvt_v2_b{index}.in1k",
        hf_filename="model.safetensors",
    )


_OFFICIAL_REPO = "https://github.com/Qiming-Huang/ssformer"

WEIGHTS: dict[str, WeightSource] = {
    source.name: source
    for source in (
        _mit(0, "1EyaZVdbezIJsj8LviM7GaIBto46a1N-Z"),
        _mit(1, "1L8NYh3LOSGf7xNm7TsZVXURbYYfeJVKh"),
        _mit(2, "1m8fsG812o6KotF1NVo0YuiSfSn18TAOA"),
        _mit(3, "1d3wU8KNjPL4EqMCIEO_rO-O3-REpG82T"),
        _mit(4, "1BUtU42moYrOFbsMCE-LTTkUE-mrWnfG2"),
        _mit(5, "1d7I50jVjtCddnhpf-lqj8-f13UyCzoW1"),
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

#: Kvasir-SEG (Jha et al., MMM 2020) from Simula; overridable for mirrors and tests.
KVASIR_URL = "https://datasets.simula.no/downloads/kvasir-seg.zip"
KVASIR_URL_ENV = "SSFORMER_KVASIR_URL"
KVASIR_ARCHIVE = "kvasir-seg.zip"

#: CVC-ClinicDB (Bernal et al., 2015) as mirrored on Kaggle; needs Kaggle credentials.
CVC_KAGGLE_DATASET = "balraj98/cvcclinicdb"
CVC_KAGGLE_PAGE = "https://www.kaggle.com/datasets/balraj98/cvcclinicdb"
CVC_ARCHIVE = "cvcclinicdb.zip"

#: The PraNet benchmark (Fan et al., MICCAI 2020) as linked by the SSFormer repository.
PRANET_DRIVE_ID = "1z48bsJftdp4akAlWOziqt6032huYYN9k"
PRANET_URL_ENV = "SSFORMER_PRANET_URL"
PRANET_ARCHIVE = "pranet-benchmark.zip"
