"""Benchmark: ssformer.metrics evaluator vs the official SSFormer test.py-style evaluation loop.

The baseline is our re-implementation of the official ``test.py`` per-image arithmetic: binarise
at 0.5, min-max normalise, then a Python loop over 256 thresholds calling an
``Fmeasure_calu``-style function (the same loop that tests/test_metrics.py uses as reference).
Both sides compute ``official_dice`` on the same Kvasir-sized random smooth probability maps;
the script checks that they agree and prints the time of each and the ratio.

    PYTHONPATH=src python benchmarks/bench_metrics.py --num-images 100 [--device cuda]

The full suite against PySODMetrics itself (S, E, weighted F, F-measure, MAE) is
benchmarks/bench_metric_suite.py.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from ssformer.metrics import PER_IMAGE_METRICS, SegmentationEvaluator

# (height, width) of Kvasir-SEG images, from the smallest (529x622) to the largest (1072x1920).
KVASIR_SIZES = [(529, 622), (576, 720), (576, 768), (720, 576), (1024, 1280), (1072, 1920)]
KVASIR_WEIGHTS = [0.15, 0.45, 0.1, 0.05, 0.1, 0.15]


def make_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random smooth probability map and an overlapping raw 0/255 mask at a Kvasir size."""
    h, w = KVASIR_SIZES[rng.choice(len(KVASIR_SIZES), p=KVASIR_WEIGHTS)]
    low = rng.normal(0.0, 1.0, (12, 12)).astype(np.float32)
    logit = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) * 3.0 - 1.0
    prob = 1.0 / (1.0 + np.exp(-logit))
    low_gt = low + rng.normal(0.0, 0.3, low.shape).astype(np.float32)
    gt_field = cv2.resize(low_gt, (w, h), interpolation=cv2.INTER_CUBIC)
    gt = np.where(gt_field > 0.3, 255, 0).astype(np.uint8)
    return prob.astype(np.float32), gt


def _fmeasure_like(pred: np.ndarray, label: np.ndarray, threshold: float) -> tuple[float, ...]:
    """The work of one threshold in the official loop (all six statistics it returns)."""
    rec = np.zeros_like(label)
    rec[pred >= min(threshold, 1.0)] = 1
    n_rec = np.sum(rec == 1)
    n_no_rec = np.sum(rec == 0)
    n_and = np.sum((rec == 1) & (label == 1))
    n_obj = np.sum(label)
    n_pred = np.sum(rec)
    fn = n_obj - n_and
    fp = n_rec - n_and
    tn = n_no_rec - fn
    if n_and == 0:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    precision, recall = n_and / n_rec, n_and / n_obj
    return (
        precision,
        recall,
        tn / (tn + fp),
        2 * n_and / (n_obj + n_pred),
        2 * precision * recall / (precision + recall),
        n_and / (fn + n_rec),
    )


def official_loop_dice(prob: np.ndarray, gt_raw: np.ndarray) -> float:
    """Official test.py per-image arithmetic with its per-threshold Python loop."""
    pred = (prob > np.float32(0.5)).astype(np.float32)
    label = (gt_raw.astype(np.float32) / 255).astype(np.uint8)
    pred = (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)
    dices = [_fmeasure_like(pred, label, t)[3] for t in np.linspace(1, 0, 256)]
    return float(np.mean(dices))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="device of the evaluator's tensors")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baseline-images",
        type=int,
        default=None,
        help="time the slow loop on the first N images only and scale to all (default: all)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    pairs = [make_pair(rng) for _ in range(args.num_images)]
    megapixels = sum(p.size for p, _ in pairs) / 1e6
    print(
        f"{args.num_images} images, {megapixels:.1f} Mpixel, torch threads "
        f"{torch.get_num_threads()}, evaluator device {args.device}"
    )
    device = torch.device(args.device)
    tensors = [(torch.from_numpy(p).to(device), torch.from_numpy(g).to(device)) for p, g in pairs]

    def run_ours(metrics: tuple[str, ...]) -> tuple[float, dict[str, float]]:
        evaluator = SegmentationEvaluator(metrics)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for prob, gt in tensors:
            evaluator.update(prob, gt)
        result = evaluator.compute()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, result

    run_ours(("official_dice",))  # warm-up (allocations, CUDA context)
    t_ours, ours = run_ours(("official_dice",))
    without_structure = tuple(m for m in PER_IMAGE_METRICS if m not in ("S_alpha", "Fw_beta"))
    t_threshold, _ = run_ours(without_structure)
    t_all, _ = run_ours(PER_IMAGE_METRICS)

    n_base = args.baseline_images or args.num_images
    start = time.perf_counter()
    base_values = [official_loop_dice(p, g) for p, g in pairs[:n_base]]
    t_base = (time.perf_counter() - start) * args.num_images / n_base
    if n_base == args.num_images:
        diff = abs(float(np.mean(base_values)) - ours["official_dice"])
    else:
        check = SegmentationEvaluator(("official_dice",))
        for prob, gt in tensors[:n_base]:
            check.update(prob, gt)
        diff = abs(float(np.mean(base_values)) - check.compute()["official_dice"])

    scaled = "" if n_base == args.num_images else f" (timed on {n_base}, scaled)"
    print(
        f"official_dice  baseline loop {t_base:8.2f} s{scaled}   ours {t_ours:6.3f} s   "
        f"ratio {t_base / t_ours:7.1f}x   |diff| {diff:.2e}"
    )
    print(
        f"ours, all per-image metrics except S_alpha/Fw_beta: {t_threshold:6.3f} s "
        f"(ratio vs baseline official_dice loop {t_base / t_threshold:.1f}x)"
    )
    print(f"ours, all per-image metrics incl. S_alpha/Fw_beta: {t_all:6.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
