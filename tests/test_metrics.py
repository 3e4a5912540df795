"""Tests of ssformer.metrics against independent references.

References used here:
- PySODMetrics (``py_sod_metrics``) for S-measure, E-measure, weighted F-measure, MAE and its
  FmeasureV2 Dice/IoU handlers;
- plain per-threshold loops written here: the official SSFormer ``test.py`` arithmetic and the
  PraNet toolbox's ``Fmeasure_calu`` loop;
- small hand-computed examples.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from py_sod_metrics import (
    MAE,
    DICEHandler,
    Emeasure,
    FmeasureV2,
    IOUHandler,
    Smeasure,
    WeightedFmeasure,
)

from ssformer.errors import DataError
from ssformer.metrics import (
    METRIC_CONVENTIONS,
    POOLED_METRICS,
    SegmentationEvaluator,
    binned_histograms,
    resize_probability,
)

TOL = 1e-6


# ----------------------------------------------------------------------------- references
def _loop_dice_iou(pred: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[float, float]:
    """One threshold of the toolbox's Fmeasure_calu (Dice and IoU; 0 when TP = 0)."""
    label = pred >= min(threshold, 1.0)
    n_rec = int(label.sum())
    n_and = int((label & gt).sum())
    n_obj = int(gt.sum())
    if n_and == 0:
        return 0.0, 0.0
    fn = n_obj - n_and
    return 2.0 * n_and / (n_obj + n_rec), n_and / (fn + n_rec)


def reference_official(prob: np.ndarray, gt_raw: np.ndarray) -> tuple[float, float]:
    """The official test.py per-image arithmetic, one threshold at a time."""
    pred = (prob.astype(np.float32) > np.float32(0.5)).astype(np.float32)
    label = (gt_raw.astype(np.float32) / 255).astype(np.uint8) == 1
    pred = (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)
    dices, ious = [], []
    for threshold in np.linspace(1, 0, 256):
        d, i = _loop_dice_iou(pred, label, threshold)
        dices.append(d)
        ious.append(i)
    return float(np.mean(dices)), float(np.mean(ious))


def mapminmax(prob: np.ndarray) -> np.ndarray:
    p = prob.astype(np.float64)
    if p.max() != p.min():
        p = (p - p.min()) / (p.max() - p.min())
    return p


def reference_pranet(prob: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """The PraNet toolbox loop: mapminmax, Thresholds = 1:-1/255:0, >=, mean over thresholds."""
    pred = mapminmax(prob)
    dices, ious = [], []
    for threshold in np.linspace(1, 0, 256):
        d, i = _loop_dice_iou(pred, gt, threshold)
        dices.append(d)
        ious.append(i)
    return float(np.mean(dices)), float(np.mean(ious))


# ----------------------------------------------------------------------------- fixtures
def _smooth_map(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    logit = np.zeros((h, w))
    for _ in range(3):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(0.1, 0.4) * min(h, w)
        logit += rng.uniform(2, 6) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    logit += rng.normal(0, 0.5, (h, w)) - 2.5
    return (1 / (1 + np.exp(-logit))).astype(np.float32)


def _gt_from(rng: np.random.Generator, prob: np.ndarray) -> np.ndarray:
    """Raw 8-bit mask (0..255, JPEG-like with intermediate values)."""
    fg = prob > rng.uniform(0.3, 0.7)
    raw = np.where(fg, 255, 0).astype(np.uint8)
    noise = rng.random(prob.shape) < 0.05
    raw[noise] = rng.integers(0, 256, int(noise.sum())).astype(np.uint8)
    return raw


def make_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases: list[tuple[str, np.ndarray, np.ndarray]] = []
    for h, w in [(37, 53), (64, 48), (101, 77)]:
        prob = _smooth_map(rng, h, w)
        cases.append((f"smooth{h}x{w}", prob, _gt_from(rng, prob)))
        uniform = rng.random((h, w)).astype(np.float32)
        cases.append((f"uniform{h}x{w}", uniform, _gt_from(rng, _smooth_map(rng, h, w))))
    prob = _smooth_map(rng, 40, 40)
    quantised = (np.round(prob * 255) / 255).astype(np.float32)  # values exactly on k/255
    cases.append(("quantised", quantised, _gt_from(rng, prob)))
    cases.append(("binary_pred", (prob > 0.5).astype(np.float32), _gt_from(rng, prob)))
    cases.append(("empty_gt", prob, np.zeros((40, 40), np.uint8)))
    cases.append(("full_gt", prob, np.full((40, 40), 255, np.uint8)))
    cases.append(("constant_pred", np.full((40, 40), 0.7, np.float32), _gt_from(rng, prob)))
    cases.append(("zero_pred", np.zeros((40, 40), np.float32), _gt_from(rng, prob)))
    cases.append(("all_fg_pred", np.ones((40, 40), np.float32), _gt_from(rng, prob)))
    cases.append(("empty_both", np.zeros((40, 40), np.float32), np.zeros((40, 40), np.uint8)))
    return cases


CASES = make_cases()
CASE_IDS = [c[0] for c in CASES]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize(("name", "prob", "gt_raw"), CASES, ids=CASE_IDS)
def test_official_matches_loop(name: str, prob: np.ndarray, gt_raw: np.ndarray) -> None:
    ev = SegmentationEvaluator(["official_dice", "official_iou"])
    ev.update(prob, gt_raw)
    res = ev.compute()
    ref_dice, ref_iou = reference_official(prob, gt_raw)
    assert res["official_dice"] == pytest.approx(ref_dice, abs=TOL)
    assert res["official_iou"] == pytest.approx(ref_iou, abs=TOL)


@pytest.mark.parametrize(("name", "prob", "gt_raw"), CASES, ids=CASE_IDS)
def test_pranet_mdice_matches_loop_and_pysod(
    name: str, prob: np.ndarray, gt_raw: np.ndarray
) -> None:
    ev = SegmentationEvaluator(["mDice", "mIoU"])
    ev.update(torch.from_numpy(prob), gt_raw)
    res = ev.compute()
    ref_dice, ref_iou = reference_pranet(prob, gt_raw > 128)
    assert res["mDice"] == pytest.approx(ref_dice, abs=TOL)
    assert res["mIoU"] == pytest.approx(ref_iou, abs=TOL)
    # PySODMetrics' FmeasureV2 bins floor(255 p): the same thresholds up to float rounding.
    fm = FmeasureV2({"dice": DICEHandler(True, False), "iou": IOUHandler(True, False)})
    fm.step(mapminmax(prob), gt_raw > 128, normalize=False)
    out = fm.get_results()
    assert res["mDice"] == pytest.approx(out["dice"]["dynamic"].mean(), abs=1e-3)
    assert res["mIoU"] == pytest.approx(out["iou"]["dynamic"].mean(), abs=1e-3)


@pytest.mark.parametrize(("name", "prob", "gt_raw"), CASES, ids=CASE_IDS)
def test_sod_metrics_match_pysodmetrics(name: str, prob: np.ndarray, gt_raw: np.ndarray) -> None:
    ev = SegmentationEvaluator(["S_alpha", "E_phi_mean", "E_phi_max", "Fw_beta", "MAE"])
    ev.update(prob, gt_raw)
    res = ev.compute()
    pred, gt = mapminmax(prob), gt_raw > 128
    sm, em, wfm, mae = Smeasure(), Emeasure(), WeightedFmeasure(), MAE()
    for metric in (sm, em, wfm, mae):
        metric.step(pred, gt, normalize=False)
    curve = em.get_results()["em"]["curve"]
    assert res["S_alpha"] == pytest.approx(sm.get_results()["sm"], abs=TOL)
    assert res["Fw_beta"] == pytest.approx(wfm.get_results()["wfm"], abs=TOL)
    assert res["MAE"] == pytest.approx(mae.get_results()["mae"], abs=TOL)
    assert res["E_phi_mean"] == pytest.approx(curve.mean(), abs=TOL)
    assert res["E_phi_max"] == pytest.approx(curve.max(), abs=TOL)


def test_dataset_means_match_pysodmetrics_uint8_path() -> None:
    """Over a whole set, with 8-bit prediction maps (the PNG path, normalize=True)."""
    ev = SegmentationEvaluator(["S_alpha", "E_phi_mean", "E_phi_max", "Fw_beta", "MAE", "mDice"])
    sm, em, wfm, mae = Smeasure(), Emeasure(), WeightedFmeasure(), MAE()
    fm = FmeasureV2({"dice": DICEHandler(True, False)})
    for _, prob, gt_raw in CASES:
        pred8 = np.round(prob * 255).astype(np.uint8)
        ev.update(pred8, gt_raw)
        for metric in (sm, em, wfm, mae, fm):
            metric.step(pred8, gt_raw)
    res = ev.compute()
    curve = em.get_results()["em"]["curve"]
    assert res["S_alpha"] == pytest.approx(sm.get_results()["sm"], abs=TOL)
    assert res["Fw_beta"] == pytest.approx(wfm.get_results()["wfm"], abs=TOL)
    assert res["MAE"] == pytest.approx(mae.get_results()["mae"], abs=TOL)
    assert res["E_phi_mean"] == pytest.approx(curve.mean(), abs=TOL)
    assert res["E_phi_max"] == pytest.approx(curve.max(), abs=TOL)
    assert res["mDice"] == pytest.approx(fm.get_results()["dice"]["dynamic"].mean(), abs=1e-3)


def test_dataset_mean_is_mean_over_images() -> None:
    ev = SegmentationEvaluator(["mDice", "official_dice", "Dice@0.5"])
    refs = []
    for _, prob, gt_raw in CASES:
        ev.update(prob, gt_raw)
        refs.append((reference_pranet(prob, gt_raw > 128)[0], reference_official(prob, gt_raw)[0]))
    res = ev.compute()
    assert ev.num_images == len(CASES)
    assert res["mDice"] == pytest.approx(np.mean([r[0] for r in refs]), abs=TOL)
    assert res["official_dice"] == pytest.approx(np.mean([r[1] for r in refs]), abs=TOL)


def test_dice_at_half_hand_computed() -> None:
    prob = np.array([[0.9, 0.6], [0.4, 0.5]], np.float32)  # 0.5 is not > 0.5
    gt = np.array([[True, False], [True, False]])
    ev = SegmentationEvaluator(["Dice@0.5", "IoU@0.5"])
    ev.update(prob, gt)
    res = ev.compute()
    assert res["Dice@0.5"] == pytest.approx(2 * 1 / (2 + 2))
    assert res["IoU@0.5"] == pytest.approx(1 / 3)
    # a perfect image and an empty-GT/empty-prediction image (0, like sklearn's f1_score)
    ev.update(np.array([[0.8, 0.1]], np.float32), np.array([[True, False]]))
    ev.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    res = ev.compute()
    assert res["Dice@0.5"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert res["IoU@0.5"] == pytest.approx((1 / 3 + 1.0 + 0.0) / 3)


def test_official_closed_form_hand_computed() -> None:
    # 4x4 image, GT = 4 pixels, prediction hits 3 of them and 1 background pixel.
    gt = np.zeros((4, 4), np.uint8)
    gt[0, :] = 255
    prob = np.zeros((4, 4), np.float32)
    prob[0, :3] = 0.9
    prob[3, 3] = 0.7
    ev = SegmentationEvaluator(["official_dice", "Dice@0.5"])
    ev.update(prob, gt)
    res = ev.compute()
    dice_bin = 2 * 3 / (4 + 4)
    dice_all = 2 * 4 / (4 + 16)  # threshold 0 marks every pixel
    assert res["Dice@0.5"] == pytest.approx(dice_bin)
    assert res["official_dice"] == pytest.approx((255 * dice_bin + dice_all) / 256)


def test_gt_conventions_differ_on_raw_masks() -> None:
    prob = np.array([[0.9, 0.9, 0.1]], np.float32)
    raw = np.array([[255, 200, 0]], np.uint8)  # 200: foreground for >128, not for ==255
    ev = SegmentationEvaluator(["Dice@0.5", "official_dice"])
    ev.update(prob, raw)
    res = ev.compute()
    assert res["Dice@0.5"] == pytest.approx(1.0)
    # official: GT = 1 pixel, pred = 2 pixels -> 2/3 at 255 thresholds; all 3 pixels at t = 0
    assert res["official_dice"] == pytest.approx((255 * 2 / 3 + 2 / 4) / 256)


def test_pooled_two_class_hand_computed() -> None:
    ev = SegmentationEvaluator(list(POOLED_METRICS))
    ev.update_pooled(np.array([[1, 1], [0, 0]]), np.array([[1, 0], [0, 0]]))
    ev.update_pooled(torch.tensor([[True, False]]), torch.tensor([[1, 1]]))
    # GT\pred: bg->bg 2, bg->fg 1, fg->bg 1, fg->fg 2
    assert ev.confusion_matrix.tolist() == [[2, 1], [1, 2]]
    res = ev.compute()
    iou_bg = 2 / (3 + 3 - 2)
    iou_fg = 2 / (3 + 3 - 2)
    assert res["mIoU_2cls"] == pytest.approx(100 * (iou_bg + iou_fg) / 2)
    assert res["mDice_2cls"] == pytest.approx(100 * (2 * 2 / 6 + 2 * 2 / 6) / 2)
    # ignore_index drops pixels; without a polyp pixel in the GT the mean is undefined (NaN,
    # with a warning), not the background's 100 alone (the study's nan-mean would say 100)
    ev2 = SegmentationEvaluator(["mIoU_2cls"])
    ev2.update_pooled(np.array([0, 0, 0]), np.array([0, 255, 0]), ignore_index=255)
    assert ev2.confusion_matrix.tolist() == [[2, 0], [0, 0]]
    with pytest.warns(UserWarning, match="no polyp pixel"):
        assert np.isnan(ev2.compute()["mIoU_2cls"])


def test_pooled_matches_seed_style_confusion() -> None:
    """Against the study's arithmetic: 2-class softmax argmax, bincount hist, nan-mean x100."""
    rng = np.random.default_rng(3)
    hist = torch.zeros(2, 2)
    ev = SegmentationEvaluator(list(POOLED_METRICS))
    for _ in range(4):
        prob = torch.from_numpy(_smooth_map(rng, 32, 32))
        target = torch.from_numpy(_gt_from(rng, prob.numpy()) > 128).long()
        two_class = torch.stack([1 - prob, prob])[None]
        pred = two_class.argmax(dim=1)[0]
        hist += torch.bincount(target.flatten() * 2 + pred.flatten(), minlength=4).view(2, 2)
        ev.update_pooled(prob > 0.5, target)
    ious = hist.diag() / (hist.sum(0) + hist.sum(1) - hist.diag())
    f1 = 2 * hist.diag() / (hist.sum(0) + hist.sum(1))
    res = ev.compute()
    assert res["mIoU_2cls"] == pytest.approx(float(ious.mean()) * 100, abs=1e-4)
    assert res["mDice_2cls"] == pytest.approx(float(f1.mean()) * 100, abs=1e-4)


def test_default_metrics_report_what_was_fed() -> None:
    _, prob, gt_raw = CASES[0]
    ev = SegmentationEvaluator()
    ev.update(prob, gt_raw)
    res = ev.compute()
    assert set(res) == set(METRIC_CONVENTIONS) - set(POOLED_METRICS)
    ev.update_pooled(prob > 0.5, gt_raw > 128)
    assert set(ev.compute()) == set(METRIC_CONVENTIONS)
    assert all(np.isfinite(v) for v in ev.compute().values())


def test_errors_are_clear() -> None:
    with pytest.raises(DataError, match="unknown metric"):
        SegmentationEvaluator(["dice"])
    ev = SegmentationEvaluator(["mDice", "mIoU_2cls"])
    with pytest.raises(DataError, match="shape"):
        ev.update(np.zeros((3, 4), np.float32), np.zeros((4, 3), bool))
    with pytest.raises(DataError, match="sigmoid"):
        ev.update(np.full((2, 2), 3.0, np.float32), np.zeros((2, 2), bool))
    with pytest.raises(DataError, match="sigmoid"):
        ev.update(np.full((2, 2), np.nan, np.float32), np.zeros((2, 2), bool))
    with pytest.raises(DataError, match="bool mask"):
        ev.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="no image"):
        ev.compute()
    with pytest.raises(DataError, match="labels"):
        ev.update_pooled(np.array([0, 2]), np.array([0, 1]))
    ev.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), bool))
    with pytest.raises(DataError, match="update_pooled"):
        ev.compute()


def test_accepts_leading_singleton_dims_and_resizes_like_official() -> None:
    prob = torch.rand(1, 1, 8, 10)
    up = resize_probability(prob, (16, 20))
    expected = torch.nn.functional.interpolate(
        prob, size=(16, 20), mode="bilinear", align_corners=False
    )
    assert torch.equal(up, expected)
    ev = SegmentationEvaluator(["mDice"])
    ev.update(up, np.ones((16, 20), bool))
    assert 0.0 < ev.compute()["mDice"] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    cpu, gpu = SegmentationEvaluator(), SegmentationEvaluator()
    for _, prob, gt_raw in CASES:
        cpu.update(prob, gt_raw)
        gpu.update(torch.from_numpy(prob).cuda(), torch.from_numpy(gt_raw).cuda())
    a, b = cpu.compute(), gpu.compute()
    for key in a:
        assert b[key] == pytest.approx(a[key], abs=1e-9), key


def test_histograms_equal_exact_comparisons() -> None:
    """Bins must reproduce `p >= t` for every linspace threshold, including values on/next to t."""
    thresholds = np.linspace(1, 0, 256)
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            [0.0, 1.0],
            rng.random(5000),
            np.arange(256) / 255,
            thresholds,
            np.nextafter(thresholds, 2.0),
            np.nextafter(thresholds, -1.0),
            np.round(rng.random(2000) * 255) / 255,
        ]
    ).clip(0.0, 1.0)
    gt = rng.random(values.size) < 0.3
    em_hist, thr_hist, abs_sum = binned_histograms(torch.from_numpy(values), torch.from_numpy(gt))
    for g in (0, 1):
        sel = values[gt == bool(g)]
        expected_thr = np.bincount([(v >= thresholds).sum() - 1 for v in sel], minlength=256)
        expected_em = np.bincount((sel * 255).astype(np.uint8), minlength=256)
        assert np.array_equal(thr_hist[g], expected_thr)
        assert np.array_equal(em_hist[g], expected_em)
    assert abs_sum == pytest.approx(np.abs(values - gt).sum(), rel=1e-12)


@pytest.mark.parametrize(
    "prob",
    [
        # a map in [0.999, 1]: float32 sums of p cancel when normalised (4e-3 off before)
        np.linspace(0.999, 1.0, 200 * 150, dtype=np.float32).reshape(200, 150),
        # two values one float32 ulp either side of 0.5 (0.25 off before)
        np.where(
            np.arange(200 * 150).reshape(200, 150) % 3 == 0,
            np.nextafter(np.float32(0.5), np.float32(1.0)),
            np.nextafter(np.float32(0.5), np.float32(0.0)),
        ).astype(np.float32),
    ],
    ids=["near-one", "two-values"],
)
def test_mae_is_exact_as_pysodmetrics(prob: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    gt = rng.random(prob.shape) < 0.4
    ev = SegmentationEvaluator(["MAE"])
    ev.update(prob, gt)
    reference = MAE()
    pred = prob.astype(np.float64)  # PySODMetrics' prepare_data, less the /255 of uint8 maps
    pred = (pred - pred.min()) / (pred.max() - pred.min())
    reference.step(pred, gt, normalize=False)
    assert abs(ev.compute()["MAE"] - float(reference.get_results()["mae"])) < 1e-7
