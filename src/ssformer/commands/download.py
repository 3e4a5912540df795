"""``ssformer download weights NAME...`` and ``ssformer download data NAME...``."""

from __future__ import annotations

import argparse

from ssformer.registry import DATASET_DOWNLOADS, STUDY_WEIGHT_FOLDERS, WEIGHT_NAMES


def _weight_name(text: str) -> str:
    """``MiT-B1``, ``mit_b1`` and ``mit-b1`` name the same weights."""
    return text.strip().lower().replace("_", "-")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``download`` command with its ``weights`` and ``data`` sub-commands."""
    parser = subparsers.add_parser(
        "download",
        help="download published weights or data sets, verified and resumable",
        description=(
            "Download the published weights (Google Drive, through gdown; for the ImageNet "
            "backbones the Hugging Face Hub copy when Drive fails, $HF_ENDPOINT for a mirror) or "
            "the data sets (Kvasir-SEG over HTTP, CVC-ClinicDB from Kaggle, the PraNet benchmark "
            "from Google Drive). Files already present and valid are kept; nothing is overwritten."
        ),
    )
    kinds = parser.add_subparsers(dest="what", metavar="WHAT", required=True)

    weights = kinds.add_parser(
        "weights",
        help="ImageNet backbones, official SSFormer checkpoints, the study's trained weights",
        description=(
            "Saves backbones to DIR/checkpoints/backbones/{mit,pvtv2}/ and the official "
            "SSFormer checkpoints to DIR/checkpoints/ssformer/. study-kvasir and "
            "study-cvc-clinicdb are the reproduction study's Google Drive folders of trained "
            "weights (gdown's folder download; not part of 'all'), saved to "
            "DIR/checkpoints/study/<data set>/, each file loaded into the model its name says."
        ),
    )
    weights.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        type=_weight_name,
        choices=[*WEIGHT_NAMES, "all", *STUDY_WEIGHT_FOLDERS],
        help=f"one or more of: {', '.join(WEIGHT_NAMES)}, all, {', '.join(STUDY_WEIGHT_FOLDERS)} "
        "(case-insensitive: MiT-B1 = mit-b1)",
    )
    weights.add_argument("--dir", default=".", help="project root (default: .)")
    weights.add_argument("--quiet", action="store_true", help="no progress bars")
    weights.set_defaults(func=run)

    data = kinds.add_parser(
        "data",
        help="Kvasir-SEG, CVC-ClinicDB or the PraNet benchmark",
        description=(
            "Kvasir-SEG and CVC-ClinicDB become DIR/<name>/{images,masks}; the PraNet benchmark "
            "keeps its layout in DIR/PraNet. Counts are checked against the published sizes. "
            "CVC-ClinicDB needs Kaggle credentials, unless DIR/cvcclinicdb.zip is already there."
        ),
    )
    data.add_argument("names", nargs="+", metavar="NAME", type=str.lower, choices=DATASET_DOWNLOADS)
    data.add_argument("--dir", default="data", help="data root (default: data)")
    data.add_argument(
        "--keep-archive", action="store_true", help="keep the downloaded archive after extraction"
    )
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    data.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``download weights`` or ``download data``; errors surface as SSFormerError."""
    from ssformer.data import download

    if args.what == "weights":
        from ssformer.models import study_zoo, zoo

        files = [name for name in args.names if name not in STUDY_WEIGHT_FOLDERS]
        if files:
            for path in zoo.download_weights(files, args.dir, quiet=args.quiet):
                print(path)
        for name in dict.fromkeys(n for n in args.names if n in STUDY_WEIGHT_FOLDERS):
            for path in study_zoo.download_study_weights(name, args.dir, quiet=args.quiet):
                print(path)
        return 0
    for name in dict.fromkeys(args.names):
        path = download.download_dataset(
            name, args.dir, keep_archive=args.keep_archive, quiet=args.quiet
        )
        print(path)
    return 0
