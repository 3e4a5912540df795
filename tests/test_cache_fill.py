"""``PairCache.fill``: the first fill on several threads makes exactly the entries that decoding
pair by pair makes (real Kvasir-SEG frames of several sizes, JPEG masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from realdata import KVASIR_STEMS, real_subset

from ssformer.data.cache import PairCache
from ssformer.data.datasets import find_pairs


def _entries(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: np.load(path) for path in sorted(folder.rglob("*.npy"))}


def test_threaded_fill_makes_the_entries_of_a_sequential_fill(tmp_path: Path) -> None:
    stems = KVASIR_STEMS[:6]
    data = real_subset("Kvasir-SEG", stems, tmp_path / "kvasir")
    pairs = find_pairs(data)
    sequential = PairCache(tmp_path / "one", (64, 64))
    for image, mask in pairs:
        sequential.get(image, mask)
    threaded = PairCache(tmp_path / "many", (64, 64))
    assert threaded.fill(pairs, threads=4) == len(stems)
    assert threaded.misses == len(stems) and threaded.hits == 0
    one, many = _entries(tmp_path / "one"), _entries(tmp_path / "many")
    assert sorted(one) == sorted(many) and len(one) == len(stems)
    for name, array in one.items():
        assert array.shape == (64, 64, 4)
        assert np.array_equal(array, many[name]), name
    # filled: a second fill decodes nothing, get() reads the stored entries
    assert threaded.fill(pairs, threads=4) == 0
    assert threaded.hits == len(stems)
    image, mask = threaded.get(*pairs[0])
    stored = many[next(name for name in many if name.startswith(pairs[0][0].stem + "."))]
    assert np.array_equal(image, stored[..., :3]) and np.array_equal(mask, stored[..., 3])


def test_threaded_fill_of_a_memory_cache_equals_get(tmp_path: Path) -> None:
    data = real_subset("Kvasir-SEG", KVASIR_STEMS[6:9], tmp_path / "kvasir")
    pairs = find_pairs(data)
    memory = PairCache(None, (48, 40))
    assert memory.fill(pairs, threads=3) == 3
    reference = PairCache(None, (48, 40))
    for image_path, mask_path in pairs:
        image, mask = memory.get(image_path, mask_path)
        expected_image, expected_mask = reference.get(image_path, mask_path)
        assert image.shape == (48, 40, 3)
        assert np.array_equal(image, expected_image) and np.array_equal(mask, expected_mask)
    assert memory.misses == 3 and memory.hits == 3
