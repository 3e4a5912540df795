"""The PySODMetrics-style suite of ssformer.metrics against PySODMetrics itself (the reference,
imported here only): S-measure, E-measure (curve and adaptive), weighted F-measure, MAE and the
F-measure curves, to 1e-6 absolute, on realistic maps and on the degenerate cases; batched
updates against per-image ones; the exact distance transform and nearest-GT rule that the
weighted F-measure relies on.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from py_sod_metrics import MAE, Emeasure, Fmeasure, Smeasure, WeightedFmeasure
from scipy.ndimage import distance_transform_edt

from ssformer.metrics import (
    CURVE_NAMES,
    DISPLAY_NAMES,
    METRIC_CONVENTIONS,
    PYSOD_METRICS,
    SegmentationEvaluator,
    squared_distances,
)
from ssformer.metrics.weighted_f import (
    _band_offsets,
    _blurred_min_sum_cpu,
    _blurred_min_sum_torch,
    _weight_table,
    gt_geometry,
)

TOL = 1e-6
SUITE = PYSOD_METRICS


# ----------------------------------------------------------------------------- reference
def mapminmax(prob: np.ndarray) -> np.ndarray:
    p = prob.astype(np.float64)
    if p.max() != p.min():
        p = (p - p.min()) / (p.max() - p.min())
    return p


def reference(pairs: list[tuple[np.ndarray, np.ndarray]], *, uint8: bool = False) -> dict:
    """PySODMetrics over (prediction, raw mask) pairs: dataset values, curves, per-image lists.
    ``uint8``: predictions are 8-bit maps read with PySODMetrics' own ``prepare_data``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm, em, wfm, mae, fm = Smeasure(), Emeasure(), WeightedFmeasure(), MAE(), Fmeasure()
        for pred, mask in pairs:
            for metric in (sm, em, wfm, mae, fm):
                if uint8:
                    metric.step(pred, mask)
                else:
                    metric.step(mapminmax(pred), mask > 128, normalize=False)
        e, f = em.get_results()["em"], fm.get_results()
    return {
        "S_alpha": sm.get_results()["sm"],
        "Fw_beta": wfm.get_results()["wfm"],
        "MAE": mae.get_results()["mae"],
        "E_phi_mean": e["curve"].mean(),
        "E_phi_max": e["curve"].max(),
        "E_phi_adp": e["adp"],
        "Fm_mean": f["fm"]["curve"].mean(),
        "Fm_max": f["fm"]["curve"].max(),
        "Fm_adp": f["fm"]["adp"],
        "curves": {
            "E_phi": e["curve"],
            "Fm": f["fm"]["curve"],
            "precision": f["pr"]["p"],
            "recall": f["pr"]["r"],
        },
        "per_image": {"S_alpha": sm.sms, "Fw_beta": wfm.weighted_fms, "MAE": mae.maes},
    }


def assert_matches(evaluator: SegmentationEvaluator, rows: list[dict], ref: dict) -> None:
    ours = evaluator.compute()
    for key in SUITE:
        expected = float(ref[key])
        if np.isnan(expected):
            assert np.isnan(ours[key]), key
        else:
            assert abs(ours[key] - expected) <= TOL, (key, ours[key], expected)
    curves = evaluator.curves()
    for name, curve in ref["curves"].items():
        assert np.max(np.abs(curves[name] - curve)) <= TOL, name
    for key, values in ref["per_image"].items():
        mine = np.array([row[key] for row in rows])
        np.testing.assert_allclose(mine, np.asarray(values, np.float64), atol=TOL, rtol=0)


# ----------------------------------------------------------------------------- cases
def kvasir_like(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random probability map and an overlapping raw 0/255 mask (as the benchmark)."""
    low = rng.normal(0.0, 1.0, (12, 12)).astype(np.float32)
    logit = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) * 3.0 - 1.0
    prob = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    low_gt = low + rng.normal(0.0, 0.3, low.shape).astype(np.float32)
    gt_field = cv2.resize(low_gt, (w, h), interpolation=cv2.INTER_CUBIC)
    return prob, np.where(gt_field > 0.3, 255, 0).astype(np.uint8)


def realistic_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for h, w in [(37, 53), (64, 48), (101, 77), (129, 257), (529, 622)]:
        prob, mask = kvasir_like(rng, h, w)
        cases.append((f"smooth{h}x{w}", prob, mask))
    prob, mask = kvasir_like(rng, 90, 70)
    speckled = mask.copy()  # salt-and-pepper GT: many equidistant nearest GT pixels
    speckled[rng.random(mask.shape) < 0.03] = 255
    speckled[rng.random(mask.shape) < 0.03] = 0
    cases.append(("speckled_gt", prob, speckled))
    noisy = mask.copy()  # JPEG-like raw mask values around the 128 cut
    noise = rng.random(mask.shape) < 0.05
    noisy[noise] = rng.integers(0, 256, int(noise.sum())).astype(np.uint8)
    cases.append(("raw_mask_values", rng.random((90, 70)).astype(np.float32), noisy))
    return cases


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 255, 0).astype(np.uint8)


def edge_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    prob, _ = kvasir_like(rng, 40, 46)
    disc = _disc(40, 46, 18.3, 25.1, 9.0)
    single = np.zeros((9, 7), np.uint8)
    single[4, 3] = 255
    corner = np.zeros((9, 7), np.uint8)
    corner[8, 6] = 255  # centroid in the last row and column: PySODMetrics' S is NaN
    quantised = (np.round(prob * 255) / 255).astype(np.float32)
    return [
        ("empty_gt", prob, np.zeros_like(disc)),
        ("full_gt", prob, np.full_like(disc, 255)),
        ("constant_0", np.zeros((40, 46), np.float32), disc),
        ("constant_0.5", np.full((40, 46), 0.5, np.float32), disc),
        ("constant_1", np.ones((40, 46), np.float32), disc),
        ("constant_0.7", np.full((40, 46), 0.7, np.float32), disc),
        ("near_one", np.linspace(0.999, 1.0, 40 * 46, dtype=np.float32).reshape(40, 46), disc),
        ("binary_pred", (prob > 0.5).astype(np.float32), disc),
        ("quantised", quantised, disc),
        ("tiny_1x1_fg", np.array([[0.3]], np.float32), np.array([[255]], np.uint8)),
        ("tiny_1x1_bg", np.array([[0.3]], np.float32), np.array([[0]], np.uint8)),
        ("tiny_2x3", rng.random((2, 3)).astype(np.float32), np.array([[255, 0, 0], [0, 255, 0]])),
        ("tiny_3x2", rng.random((3, 2)).astype(np.float32), np.array([[0, 255], [0, 0], [255, 0]])),
        ("single_pixel", rng.random((9, 7)).astype(np.float32), single),
        ("single_pixel_corner", rng.random((9, 7)).astype(np.float32), corner),
        ("gt_on_border", prob, _disc(40, 46, 0.0, 45.0, 12.0)),
    ]


REALISTIC = realistic_cases()
EDGES = edge_cases()


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize(("name", "prob", "mask"), REALISTIC + EDGES, ids=lambda x: str(x)[:30])
def test_each_image_matches_pysodmetrics(name: str, prob: np.ndarray, mask: np.ndarray) -> None:
    evaluator = SegmentationEvaluator(SUITE)
    rows = [evaluator.update(prob, mask.astype(np.uint8))]
    assert_matches(evaluator, rows, reference([(prob, mask.astype(np.uint8))]))


def test_dataset_means_and_curves_match_pysodmetrics() -> None:
    # without the NaN case and the 1-pixel images (E-measure 1/eps there), checked per image
    skip = ("single_pixel_corner", "tiny_1x1_fg", "tiny_1x1_bg")
    pairs = [(p, m.astype(np.uint8)) for name, p, m in REALISTIC + EDGES if name not in skip]
    evaluator = SegmentationEvaluator(SUITE)
    rows = [evaluator.update(torch.from_numpy(p), torch.from_numpy(m)) for p, m in pairs]
    assert_matches(evaluator, rows, reference(pairs))


def test_nan_s_measure_propagates_like_pysodmetrics() -> None:
    """A GT whose centroid lies in the last row/column makes PySODMetrics' S NaN, and the mean."""
    _, prob, mask = next(c for c in EDGES if c[0] == "single_pixel_corner")
    evaluator = SegmentationEvaluator(["S_alpha", "Fw_beta"])
    row = evaluator.update(prob, mask)
    assert np.isnan(row["S_alpha"]) and np.isfinite(row["Fw_beta"])
    assert np.isnan(float(reference([(prob, mask)])["S_alpha"]))


@pytest.mark.parametrize("path", ["uint8_prob", "saved_map"])
def test_saved_8bit_maps_match_pysodmetrics_prepare_data(path: str) -> None:
    """8-bit maps: PySODMetrics' own normalize=True path (v / 255, then mapminmax)."""
    pairs = [(np.round(p * 255).astype(np.uint8), m.astype(np.uint8)) for _, p, m in REALISTIC]
    evaluator = SegmentationEvaluator(SUITE)
    if path == "uint8_prob":
        rows = [evaluator.update(p8, m) for p8, m in pairs]
    else:  # the toolbox recipe: float prob for the 0.5 metrics, the saved map for these
        rows = [evaluator.update(p8 / 255.0, m, saved_map=p8) for p8, m in pairs]
    assert_matches(evaluator, rows, reference(pairs, uint8=True))


def test_batched_equals_per_image() -> None:
    rng = np.random.default_rng(7)
    pairs = [kvasir_like(rng, 61, 83) for _ in range(4)]
    pairs.append((pairs[0][0], np.zeros((61, 83), np.uint8)))  # an empty GT within the batch
    pairs.append((np.full((61, 83), 0.5, np.float32), pairs[1][1]))
    one, batch = SegmentationEvaluator(), SegmentationEvaluator()
    rows_one = [one.update(p, m) for p, m in pairs]
    probs = torch.from_numpy(np.stack([p for p, _ in pairs]))
    rows_batch = batch.update_batch(
        probs[:, None], torch.from_numpy(np.stack([m for _, m in pairs]))
    )
    for got, expected in zip(rows_batch, rows_one, strict=True):
        assert got == pytest.approx(expected, abs=1e-12)
    a, b = one.compute(), batch.compute()
    assert set(a) == set(b)
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-12), key
    for name, curve in one.curves().items():
        np.testing.assert_allclose(batch.curves()[name], curve, atol=1e-12, rtol=0)
    # a list of maps works too; maps of different sizes are refused
    listed = SegmentationEvaluator(["S_alpha"])
    listed.update_batch([p for p, _ in pairs[:2]], [m for _, m in pairs[:2]])
    assert listed.compute()["S_alpha"] == pytest.approx(
        np.mean([r["S_alpha"] for r in rows_one[:2]])
    )
    with pytest.raises(Exception, match="different sizes"):
        listed.update_batch([pairs[0][0], pairs[0][0][:10]], [pairs[0][1], pairs[0][1][:10]])


def test_batched_saved_maps_equal_per_image() -> None:
    rng = np.random.default_rng(8)
    pairs = [kvasir_like(rng, 45, 38) for _ in range(3)]
    saved = [np.round(p * 255).astype(np.uint8) for p, _ in pairs]
    one, batch = SegmentationEvaluator(), SegmentationEvaluator()
    for (p, m), s in zip(pairs, saved, strict=True):
        one.update(p, m, saved_map=s)
    batch.update_batch([p for p, _ in pairs], [m for _, m in pairs], saved_maps=saved)
    a, b = one.compute(), batch.compute()
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-12), key


# ----------------------------------------------------------------------------- the parts
def random_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    masks = []
    for trial in range(60):
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        kind = trial % 3
        if kind == 0:
            mask = rng.random((h, w)) < rng.choice([0.002, 0.05, 0.4])
        elif kind == 1:
            mask = np.zeros((h, w), bool)
            mask[rng.integers(0, h), rng.integers(0, w)] = True
        else:
            mask = _disc(h, w, h * rng.random(), w * rng.random(), min(h, w) * rng.random()) > 0
        if mask.any():
            masks.append(mask)
    return masks


@pytest.mark.parametrize("cv2_threads", [1, 2])  # OpenCV uses IPP's transform on one thread
def test_squared_distances_are_scipys(cv2_threads: int) -> None:
    before = cv2.getNumThreads()
    cv2.setNumThreads(cv2_threads)
    try:
        for mask in random_masks():
            expected = np.rint(distance_transform_edt(~mask) ** 2)
            got = squared_distances(torch.from_numpy(mask)[None])[0].numpy()
            np.testing.assert_array_equal(got, expected)
    finally:
        cv2.setNumThreads(before)


def test_nearest_gt_pixel_is_scipys_feature_transform() -> None:
    """Off the GT within the 7x7 kernel's reach, the nearest GT pixel (ties included) is the one
    scipy's distance_transform_edt(return_indices=True) gives."""
    for mask in random_masks():
        w = mask.shape[1]
        geometry = gt_geometry(mask[None])
        _, (iy, ix) = distance_transform_edt(~mask, return_indices=True)
        wp = w + 8
        band_y, band_x = np.divmod(geometry.band, wp)
        near_y, near_x = np.divmod(geometry.nearest, wp)
        np.testing.assert_array_equal(near_y - 4, iy[band_y - 4, band_x - 4])
        np.testing.assert_array_equal(near_x - 4, ix[band_y - 4, band_x - 4])
        d2 = distance_transform_edt(~mask) ** 2
        reach = (d2 > 0) & (d2 <= 18.5)
        assert geometry.band.size == int(reach.sum())


def test_blur_of_other_devices_equals_the_cpu_one_and_scipys() -> None:
    """The blur that CUDA uses (two 1-D torch convolutions), run here on the CPU, and the CPU's
    OpenCV one both give scipy's 7x7 ``convolve`` (``mode='constant'``) summed over the GT."""
    from scipy.ndimage import convolve

    rng = np.random.default_rng(5)
    x = np.arange(-3, 4, dtype=np.float64)
    kernel = np.outer(np.exp(-(x * x) / 50), np.exp(-(x * x) / 50))
    kernel /= kernel.sum()
    for mask in random_masks()[:20]:
        h, w = mask.shape
        values = rng.random((2, h, w))
        bordered = torch.zeros(2, h + 8, w + 8, dtype=torch.float64)
        bordered[:, 4:-4, 4:-4] = torch.from_numpy(values)
        masks = torch.from_numpy(np.stack([mask, mask[::-1].copy()]))
        rows, cols = (
            np.flatnonzero(masks.numpy().any((0, 2))),
            np.flatnonzero(masks.numpy().any((0, 1))),
        )
        box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        expected = [
            np.minimum(convolve(values[b], kernel, mode="constant"), values[b])[
                masks[b].numpy()
            ].sum()
            for b in range(2)
        ]
        np.testing.assert_allclose(_blurred_min_sum_cpu(bordered, masks, box), expected, rtol=1e-12)
        np.testing.assert_allclose(
            _blurred_min_sum_torch(bordered, masks, box), expected, rtol=1e-12
        )


def test_band_offsets_cover_each_squared_distance() -> None:
    offsets = _band_offsets()
    for n in range(1, 19):
        expected = {
            (dy, dx) for dy in range(-5, 6) for dx in range(-5, 6) if dy * dy + dx * dx == n
        }
        got = {tuple(o) for o in offsets[n] if tuple(o) != (0, 0)}
        assert got == expected, n


def test_weight_table_saturates_at_two() -> None:
    """B = 2 - exp(log(0.5) / 5 * D) is exactly 2.0 from the table's last entry on, so capping
    the squared distance there loses nothing."""
    table = _weight_table()
    assert table[0] == 1.0 and table[-1] == 2.0 and table[-2] < 2.0
    far = np.arange(table.size, 5_000_000, 997, dtype=np.float64)
    assert np.all(2 - np.exp(np.log(0.5) / 5 * np.sqrt(far)) == 2.0)


def test_large_sides_use_an_exact_transform() -> None:
    """Sides >= 2048: the transpose (one long side) keeps OpenCV exact."""
    mask = np.zeros((2100, 24), bool)
    mask[[3, 1500, 2099], [5, 20, 0]] = True
    expected = np.rint(distance_transform_edt(~mask) ** 2)
    got = squared_distances(torch.from_numpy(mask)[None])[0].numpy()
    exact = expected < 2**22  # beyond, OpenCV's float32 distance squared is within one unit
    np.testing.assert_array_equal(got[exact], expected[exact])
    assert np.abs(got - expected).max() <= 1


@pytest.mark.slow
def test_both_sides_large_fall_back_to_scipy() -> None:
    mask = np.zeros((2050, 2049), bool)
    mask[1000:1010, 7:30] = True
    expected = np.rint(distance_transform_edt(~mask) ** 2)
    got = squared_distances(torch.from_numpy(mask)[None])[0].numpy()
    np.testing.assert_array_equal(got, expected)


def test_new_keys_are_documented() -> None:
    for key in SUITE:
        assert key in METRIC_CONVENTIONS
    for key in ("E_phi_adp", "Fm_mean", "Fm_max", "Fm_adp"):
        assert key in DISPLAY_NAMES
    evaluator = SegmentationEvaluator()
    evaluator.update(REALISTIC[0][1], REALISTIC[0][2])
    assert set(evaluator.curves()) == set(CURVE_NAMES)
    assert all(curve.shape == (256,) for curve in evaluator.curves().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    cpu, gpu = SegmentationEvaluator(), SegmentationEvaluator()
    for _, prob, mask in REALISTIC + EDGES:
        cpu.update(prob, mask)
        gpu.update(torch.from_numpy(prob).cuda(), torch.from_numpy(mask.astype(np.uint8)).cuda())
    a, b = cpu.compute(), gpu.compute()
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-9, nan_ok=True), key
    probs = torch.stack(
        [torch.from_numpy(kvasir_like(np.random.default_rng(i), 50, 60)[0]) for i in range(3)]
    )
    masks = (probs > 0.4).to(torch.uint8) * 255
    one, many = SegmentationEvaluator(), SegmentationEvaluator()
    for p, m in zip(probs, masks, strict=True):
        one.update(p, m)
    many.update_batch(probs.cuda(), masks.cuda())
    for key, value in one.compute().items():
        assert many.compute()[key] == pytest.approx(value, abs=1e-9), key


def test_the_registry_names_every_metric_the_evaluator_computes() -> None:
    """EVAL.METRICS is validated from ssformer.registry (no torch at config time): the evaluator
    computes exactly the registered metrics, each with its convention text."""
    from ssformer.metrics import SegmentationEvaluator
    from ssformer.registry import METRIC_CONVENTIONS, METRIC_NAMES, TRAINING_METRIC_NAMES

    generator = torch.Generator().manual_seed(0)
    prob = torch.rand(24, 32, generator=generator, dtype=torch.float64)
    gt = torch.zeros(24, 32, dtype=torch.bool)
    gt[6:18, 8:20] = True
    evaluator = SegmentationEvaluator()
    evaluator.update(prob, gt)
    evaluator.update_pooled(prob > 0.5, gt)
    assert tuple(evaluator.compute()) == METRIC_NAMES
    assert all(METRIC_CONVENTIONS[name] for name in METRIC_NAMES)
    assert set(TRAINING_METRIC_NAMES) <= set(METRIC_NAMES)


def test_eval_metrics_config_all_fast_list_and_typo() -> None:
    from ssformer.config import load_config
    from ssformer.errors import ConfigError
    from ssformer.registry import METRIC_NAMES, TRAINING_METRIC_NAMES

    assert load_config("demo").eval.metrics == TRAINING_METRIC_NAMES
    assert load_config("demo", ["EVAL.METRICS=all"]).eval.metrics == METRIC_NAMES
    chosen = load_config("demo", ["EVAL.METRICS=[S_alpha, Fw_beta]"]).eval.metrics
    assert chosen == ("S_alpha", "Fw_beta")
    with pytest.raises(ConfigError, match=r"EVAL\.METRICS=.S_alfa.*Did you mean S_alpha"):
        load_config("demo", ["EVAL.METRICS=[S_alfa]"])


def test_the_worker_thread_leaves_torchs_thread_count_alone() -> None:
    """Fw_beta's worker runs torch on one thread; threads started later (and the caller) keep
    the caller's count."""
    import threading

    from ssformer.metrics import weighted_f

    before = torch.get_num_threads()
    if weighted_f._executor is not None:  # start a fresh worker in this test
        weighted_f._executor.shutdown()
        weighted_f._executor = None
    torch.set_num_threads(2)
    try:
        evaluator = SegmentationEvaluator(("Fw_beta",), threads=None)
        evaluator.update(REALISTIC[0][1], REALISTIC[0][2])
        seen: list[int] = []
        later = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        later.start()
        later.join()
        assert torch.get_num_threads() == 2
        assert seen == [2]
    finally:
        torch.set_num_threads(before)
