"""The optional packages of exported inference (``pip install 'ssformer[deploy]'``), imported on
demand with one clear error when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from ssformer.errors import ExportError

__all__ = ["DEPLOY_PACKAGES", "INSTALL_HINT", "require"]

DEPLOY_PACKAGES: dict[str, str] = {
    "onnx": "onnx",
    "onnxscript": "onnxscript",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "nncf": "nncf",
}
"""Import name -> package name on the package index (the ``deploy`` extra of pyproject.toml)."""

INSTALL_HINT = "pip install 'ssformer[deploy]'"


def require(name: str, purpose: str) -> ModuleType:
    """Import module ``name`` (a key of :data:`DEPLOY_PACKAGES`) or raise :class:`ExportError`
    saying what needs it (``purpose``) and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        package = DEPLOY_PACKAGES.get(name.split(".")[0], name)
        raise ExportError(
            f"{purpose} needs the package {package!r}, which is not installed ({error}); "
            f"install the optional deploy dependencies with {INSTALL_HINT} "
            f"(or pip install {package})"
        ) from error
