"""Kaggle data sets through the ``kaggle`` package, after checking that credentials exist
(importing ``kaggle`` without them prints its own help and may exit the process). Messages name
where credentials would come from, never their values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ssformer.errors import DownloadError

__all__ = ["kaggle_credentials_source", "kaggle_download", "kaggle_setup_help"]


def kaggle_credentials_source(environ: Mapping[str, str] | None = None) -> str | None:
    """Where Kaggle credentials would come from (never their value), or ``None``."""
    env = os.environ if environ is None else environ
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return "the KAGGLE_USERNAME and KAGGLE_KEY environment variables"
    if env.get("KAGGLE_API_TOKEN"):
        return "the KAGGLE_API_TOKEN environment variable"
    home = Path(env.get("HOME") or Path.home())
    candidates = []
    if env.get("KAGGLE_CONFIG_DIR"):
        candidates.append(Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json")
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    candidates += [
        home / ".kaggle" / "kaggle.json",
        config_home / "kaggle" / "kaggle.json",
        home / ".kaggle" / "access_token",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return None


def kaggle_setup_help(
    what: str, page: str, save_as: Path, environ: Mapping[str, str] | None = None
) -> str:
    """How to give the ``kaggle`` package credentials (names variables, never values)."""
    env = os.environ if environ is None else environ
    half = ""
    if bool(env.get("KAGGLE_USERNAME")) != bool(env.get("KAGGLE_KEY")):
        missing = "KAGGLE_KEY" if env.get("KAGGLE_USERNAME") else "KAGGLE_USERNAME"
        half = f" (KAGGLE_USERNAME and KAGGLE_KEY must both be set; {missing} is not)"
    return (
        f"{what} comes from Kaggle ({page}), which needs an API "
        f"token, and none was found{half}. Set one up: sign in at kaggle.com, open Settings > "
        "API > 'Create New Token', save the kaggle.json it gives you as ~/.kaggle/kaggle.json "
        "and run `chmod 600 ~/.kaggle/kaggle.json`; or export KAGGLE_USERNAME and KAGGLE_KEY "
        "(on Colab: from the notebook's Secrets). Alternatively download the archive from that "
        f"page by hand, save it as {save_as} and run the command again."
    )


def kaggle_download(
    dataset: str, folder: Path, *, what: str, page: str, save_as: Path, quiet: bool = False
) -> Path:
    """Download Kaggle ``dataset`` as a zip into ``folder``; return the zip's path.

    Credentials are checked before ``kaggle`` is imported, because importing it without them
    prints its own help and may exit the process.
    """
    if kaggle_credentials_source() is None:
        raise DownloadError(kaggle_setup_help(what, page, save_as))
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except (ImportError, OSError, SystemExit) as error:
        raise DownloadError(
            f"The 'kaggle' package failed to import ({type(error).__name__}: {error}). Repair "
            "it with `pip install -U kaggle` (older releases also need `pip install six`), or "
            f"download the archive from {page} by hand and save it as "
            f"{save_as}."
        ) from error
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit:
        raise DownloadError(
            f"Kaggle did not accept the credentials from {kaggle_credentials_source()}. "
            + kaggle_setup_help(what, page, save_as)
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_files(dataset, path=str(folder), quiet=quiet, unzip=False)
    except Exception as error:  # the kaggle client raises many unrelated types
        raise DownloadError(
            f"Kaggle download of {dataset} failed ({type(error).__name__}: {error}). Check the "
            f"network, or download it from {page} by hand and save it as "
            f"{save_as}."
        ) from error
    zips = sorted(folder.glob("*.zip"))
    if len(zips) != 1:
        raise DownloadError(
            f"Kaggle download of {dataset} left {[p.name for p in zips]} in {folder}, expected "
            "one zip archive."
        )
    return zips[0]
