"""ssformer: SSFormer ("Stepwise Feature Fusion: Local Guides Global", Wang et al., MICCAI 2022)
for polyp segmentation, with the SegFormer MLP decoder as baseline and the reproduction study's
PLD variant.

Public API (imported lazily so that ``import ssformer`` and the CLI start fast):

- :func:`build_model` builds ``SSFormer`` / ``PLDSegFormer`` / ``SegFormer`` on MiT or PVTv2.
- :func:`load_weights` loads any supported checkpoint strictly, with ``weights_only=True``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "build_model", "load_weights"]

if TYPE_CHECKING:
    from ssformer.models import build_model
    from ssformer.models.loading import load_weights


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from ssformer.models import build_model

        return build_model
    if name == "load_weights":
        from ssformer.models.loading import load_weights

        return load_weights
    raise AttributeError(f"module 'ssformer' has no attribute {name!r}")
