"""Evaluation inputs exactly as each original pipeline prepares them (``EVAL.RECIPE``).

Every number printed beside a published one must come from the pipeline its source used; the
resize rule, the resampling library and the ground-truth rule all move the numbers. Per recipe,
:class:`RecipeEvalDataset` gives the model input, the label at the input size (for the pooled
2-class metrics) and the original mask pixels (each metric convention takes its own GT rule
from them, see :class:`ssformer.metrics.SegmentationEvaluator`):

- ``study``: the reproduction study's ``semseg`` framework (``get_val_augmentation``, its
  ``Resize`` and its Kvasir / CVC-ClinicDB datasets): image and mask read as stored
  (``torchvision.io.read_image``), the shorter side scaled to ``EVAL.IMAGE_SIZE[0]`` with
  Python ``round``, then both sides resized up to the next multiple of 32 (two resizes:
  image bilinear, mask nearest, torchvision on uint8 tensors, no antialiasing, as its
  torchvision did for tensors); label = ``(mask[0] / 255).long()``, i.e. polyp only where the
  mask's first channel is exactly 255. 530x622 -> 352x416, 1072x1350 -> 352x448,
  288x384 -> 352x480.
- ``official``: the SSFormer repository's ``test.py`` (``utils/test_dataset.py``): the RGB image
  resized to ``EVAL.IMAGE_SIZE`` by PIL ``Image.resize(BILINEAR)``; GT ``convert("L")`` at the
  original size.
- ``pranet-toolbox``: the same input as ``official`` (PraNet's ``transforms.Resize`` on a PIL
  image is PIL bilinear); the prediction is then saved as an 8-bit map and read back as the
  PraNet toolbox does (:func:`toolbox_map`, applied by the evaluation).

All three normalise with the ImageNet mean and std after dividing by 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ssformer.data.datasets import find_pairs
from ssformer.data.decode import (
    decode_image,
    decode_mask_as_stored,
    decode_mask_grey,
    read_image_size,
)
from ssformer.data.study_resize import normalise_uint8, study_eval_size, study_resize
from ssformer.errors import ConfigError, DataError
from ssformer.registry import EVAL_RECIPES

__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeEvalDataset",
    "recipe_named",
    "toolbox_map",
]


@dataclass(frozen=True)
class Recipe:
    """One evaluation pipeline (``EVAL.RECIPE``), as the rest of the package asks about it.

    ``aspect_kept``: the input keeps each image's aspect ratio (shorter side to the size, sides
    up to multiples of 32; the study's), else every input is resized to the size itself.
    ``scores_saved_map``: the per-image scores are read from the 8-bit map PraNet saves
    (:func:`toolbox_map`), not from the float probability.
    """

    name: str
    aspect_kept: bool = False
    scores_saved_map: bool = False


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("study", aspect_kept=True),
        Recipe("official"),
        Recipe("pranet-toolbox", scores_saved_map=True),
    )
}
"""The pipelines of :data:`ssformer.registry.EVAL_RECIPES`."""


def recipe_named(name: str | Recipe) -> Recipe:
    """The recipe called ``name`` (a :class:`Recipe` is returned as it is)."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ConfigError(f"EVAL.RECIPE={name!r} is not one of {', '.join(EVAL_RECIPES)}")
    return RECIPES[name]


def _as_chw(array: np.ndarray) -> torch.Tensor:
    """``read_image``'s layout: uint8 ``[C, H, W]`` with the file's own channels."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.array(array.transpose(2, 0, 1)))


def toolbox_map(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The 8-bit map that PraNet / Polyp-PVT save and the PraNet toolbox reads.

    ``logits`` ``[h, w]`` of the polyp channel (a 2-class model: its polyp probability as a
    logit); resized bilinearly (``align_corners=False``) to ``size``, sigmoid, min-max
    normalised with ``+ 1e-8`` in float32, times 255 and rounded half to even as
    ``cv2.imwrite`` does: uint8 ``[H, W]``.
    """
    x = logits.float().reshape(1, 1, *logits.shape[-2:])
    res = torch.sigmoid(F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False))
    res = res[0, 0]
    res = (res - res.min()) / (res.max() - res.min() + 1e-8)
    return torch.round(res * 255.0).clamp_(0, 255).to(torch.uint8)


class RecipeEvalDataset(Dataset):
    """The image/mask pairs of ``root`` as evaluation recipe ``recipe`` feeds them.

    Items: ``image`` (normalised float32 ``[3, h, w]``: the model input), ``mask`` (float32
    ``[1, h, w]`` 0/1 at the input size: the pooled 2-class label of the recipe) and ``index``.
    ``original_mask(index)`` gives the original mask's grey pixels (uint8). Under an
    aspect-kept recipe the input size follows each image's aspect ratio, so batches hold one
    size only (see :meth:`input_size`).
    """

    def __init__(self, root: Path, recipe: str | Recipe, image_size: tuple[int, int]) -> None:
        self.root = Path(root)
        self.recipe = recipe_named(recipe)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.pairs = find_pairs(self.root)
        self.names: list[str] = [image.stem for image, _ in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def input_size(self, index: int) -> tuple[int, int]:
        """``(h, w)`` of item ``index``'s model input (read from the image header)."""
        if not self.recipe.aspect_kept:
            return self.image_size
        height, width = read_image_size(self.pairs[index][0])
        return study_eval_size(height, width, self.image_size[0])[1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.pairs[index]
        if self.recipe.aspect_kept:
            image, mask = self._study_item(image_path, mask_path)
        else:
            image, mask = self._official_item(image_path, mask_path)
        return {"image": image, "mask": mask, "index": index}

    def _study_item(self, image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        image = _as_chw(decode_image(image_path))
        mask = _as_chw(decode_mask_as_stored(mask_path))
        if image.shape[1:] != mask.shape[1:]:
            raise DataError(f"{image_path.name} and its mask {mask_path} differ in size")
        image, mask = study_resize(image, mask, self.image_size[0])
        label = (mask[0:1] == 255).to(torch.float32)  # (mask[0] / 255).long()
        return normalise_uint8(image), label

    def _official_item(
        self, image_path: Path, mask_path: Path
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = self.image_size
        rgb = Image.fromarray(decode_image(image_path)).resize((w, h), Image.BILINEAR)
        image = normalise_uint8(_as_chw(np.asarray(rgb)))
        grey = Image.fromarray(decode_mask_grey(mask_path)).resize((w, h), Image.NEAREST)
        label = torch.from_numpy(np.asarray(grey) > 128)[None].to(torch.float32)
        return image, label

    def original_mask(self, index: int) -> np.ndarray:
        """The original mask's grey pixels, uint8 ``[H, W]`` (PIL ``convert("L")``)."""
        return np.array(decode_mask_grey(self.pairs[index][1]))

    def __repr__(self) -> str:
        return f"RecipeEvalDataset(root={str(self.root)!r}, recipe={self.recipe.name!r}, n={len(self)})"
