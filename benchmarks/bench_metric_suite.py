"""Benchmark: the PySODMetrics-style metric suite of ssformer.metrics vs PySODMetrics itself.

Both sides score the same Kvasir-sized random smooth probability maps with overlapping raw
0/255 masks (``make_pair`` of benchmarks/bench_metrics.py), starting from the float32 map and
the uint8 mask: GT = mask > 128, ``mapminmax`` normalisation, then

- PySODMetrics: ``Smeasure``, ``Emeasure``, ``WeightedFmeasure``, ``MAE`` and ``Fmeasure``
  ``step(..., normalize=False)`` per image, ``get_results()`` at the end;
- ours: ``SegmentationEvaluator`` with the same metrics (``S_alpha``, ``E_phi_mean/max/adp``,
  ``Fw_beta``, ``MAE``, ``Fm_mean/max/adp``; the E/F curves and precision/recall come along),
  ``update()`` per image (or ``update_batch()`` over images of one size with ``--batch``).

The two are timed in turn on all images, ``--repeats`` times, the order alternating; the ratio
of each repeat is printed with the median, min and max. The results of the first repeat are
checked against each other (dataset means, curves and per-image values) to 1e-6: the script
exits with status 1 if any differs more. A line with our full default per-image suite (also
mDice/mIoU, official_*, Dice@0.5) is printed for reference.

    PYTHONPATH=src python benchmarks/bench_metric_suite.py --num-images 100 --repeats 5 \\
        [--threads 2] [--batch 8] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import make_pair

from ssformer.metrics import PER_IMAGE_METRICS, PYSOD_METRICS, SegmentationEvaluator

SUITE = PYSOD_METRICS
TOL = 1e-6


def run_pysod(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, dict[str, object]]:
    """PySODMetrics on every pair; returns (seconds, its results and per-image lists)."""
    from py_sod_metrics import MAE, Emeasure, Fmeasure, Smeasure, WeightedFmeasure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Fmeasure's deprecation notice
        sm, em, wfm, mae, fm = Smeasure(), Emeasure(), WeightedFmeasure(), MAE(), Fmeasure()
    start = time.perf_counter()
    for prob, mask in pairs:
        gt = mask > 128
        pred = prob.astype(np.float64)
        lo, hi = pred.min(), pred.max()
        if hi > lo:
            pred = (pred - lo) / (hi - lo)
        for metric in (sm, em, wfm, mae, fm):
            metric.step(pred, gt, normalize=False)
    results = {
        "sm": sm.get_results(),
        "em": em.get_results(),
        "wfm": wfm.get_results(),
        "mae": mae.get_results(),
        "fm": fm.get_results(),
    }
    elapsed = time.perf_counter() - start
    results["per_image"] = {
        "S_alpha": sm.sms,
        "Fw_beta": wfm.weighted_fms,
        "E_phi_adp": em.adaptive_ems,
        "MAE": mae.maes,
        "Fm_adp": fm.adaptive_fms,
    }
    return elapsed, results


def run_ours(
    tensors: list[tuple[torch.Tensor, torch.Tensor]],
    metrics: tuple[str, ...],
    batch: int,
    device: torch.device,
) -> tuple[float, SegmentationEvaluator, list[dict[str, float]]]:
    """Our evaluator on every pair; returns (seconds, the evaluator, per-image values)."""
    evaluator = SegmentationEvaluator(metrics)
    rows: list[dict[str, float]] = []
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    if batch <= 1:
        rows = [evaluator.update(prob, gt) for prob, gt in tensors]
    else:
        for group in _size_groups(tensors, batch):
            probs = torch.stack([tensors[i][0] for i in group])
            gts = torch.stack([tensors[i][1] for i in group])
            rows.extend(zip(group, evaluator.update_batch(probs, gts), strict=True))
        rows = [row for _, row in sorted(rows, key=lambda item: item[0])]
    evaluator.compute()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, evaluator, rows


def _size_groups(tensors: list[tuple[torch.Tensor, torch.Tensor]], batch: int) -> list[list[int]]:
    """Indices of the images grouped by size, in order, at most ``batch`` per group."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, (prob, _) in enumerate(tensors):
        by_size.setdefault(tuple(prob.shape), []).append(index)
    return [
        members[start : start + batch]
        for members in by_size.values()
        for start in range(0, len(members), batch)
    ]


def parity(
    evaluator: SegmentationEvaluator, rows: list[dict[str, float]], ref: dict
) -> dict[str, float]:
    """Largest |ours - PySODMetrics| per quantity (dataset means, curves, per-image values)."""
    ours, curves = evaluator.compute(), evaluator.curves()
    e_curve, f_curve = ref["em"]["em"]["curve"], ref["fm"]["fm"]["curve"]
    pairs = {
        "S_alpha": (ours["S_alpha"], ref["sm"]["sm"]),
        "Fw_beta": (ours["Fw_beta"], ref["wfm"]["wfm"]),
        "MAE": (ours["MAE"], ref["mae"]["mae"]),
        "E_phi_mean": (ours["E_phi_mean"], e_curve.mean()),
        "E_phi_max": (ours["E_phi_max"], e_curve.max()),
        "E_phi_adp": (ours["E_phi_adp"], ref["em"]["em"]["adp"]),
        "Fm_mean": (ours["Fm_mean"], f_curve.mean()),
        "Fm_max": (ours["Fm_max"], f_curve.max()),
        "Fm_adp": (ours["Fm_adp"], ref["fm"]["fm"]["adp"]),
        "E_phi curve": (curves["E_phi"], e_curve),
        "Fm curve": (curves["Fm"], f_curve),
        "precision curve": (curves["precision"], ref["fm"]["pr"]["p"]),
        "recall curve": (curves["recall"], ref["fm"]["pr"]["r"]),
    }
    diffs = {k: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for k, (a, b) in pairs.items()}
    for key, values in ref["per_image"].items():
        mine = np.array([row[key] for row in rows])
        diffs[f"{key} per image"] = float(np.max(np.abs(mine - np.asarray(values, np.float64))))
    return diffs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--batch", type=int, default=1, help="update_batch over same-size images")
    parser.add_argument("--device", default="cpu", help="device of our evaluator's tensors")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(args.seed)
    pairs = [make_pair(rng) for _ in range(args.num_images)]
    tensors = [(torch.from_numpy(p).to(device), torch.from_numpy(g).to(device)) for p, g in pairs]
    megapixels = sum(p.size for p, _ in pairs) / 1e6
    print(
        f"{args.num_images} images, {megapixels:.1f} Mpixel, torch threads "
        f"{torch.get_num_threads()}, device {device}, batch {args.batch}"
    )
    run_ours(tensors[:2], SUITE, args.batch, device)  # warm-up (tables, worker thread)

    ratios, ours_times, pysod_times = [], [], []
    diffs: dict[str, float] = {}
    for repeat in range(args.repeats):
        if repeat % 2 == 0:
            t_ours, evaluator, rows = run_ours(tensors, SUITE, args.batch, device)
            t_pysod, ref = run_pysod(pairs)
        else:
            t_pysod, ref = run_pysod(pairs)
            t_ours, evaluator, rows = run_ours(tensors, SUITE, args.batch, device)
        if repeat == 0:
            diffs = parity(evaluator, rows, ref)
        ratios.append(t_pysod / t_ours)
        ours_times.append(t_ours)
        pysod_times.append(t_pysod)
        print(
            f"repeat {repeat}: PySODMetrics {t_pysod:7.2f} s   ours {t_ours:6.2f} s   "
            f"ratio {t_pysod / t_ours:5.1f}x"
        )
    t_full, _, _ = run_ours(tensors, PER_IMAGE_METRICS, args.batch, device)

    n = args.num_images
    print(
        f"PySODMetrics {statistics.median(pysod_times) / n * 1e3:6.1f} ms/image, ours "
        f"{statistics.median(ours_times) / n * 1e3:5.1f} ms/image (medians)"
    )
    print(
        f"ratio: median {statistics.median(ratios):.1f}x, min {min(ratios):.1f}x, "
        f"max {max(ratios):.1f}x over {args.repeats} interleaved repeats"
    )
    print(
        f"ours, full default per-image suite ({len(PER_IMAGE_METRICS)} metrics): "
        f"{t_full / n * 1e3:.1f} ms/image"
    )
    worst = max(diffs, key=lambda k: diffs[k])
    print(f"parity: max |ours - PySODMetrics| = {diffs[worst]:.2e} ({worst})")
    failed = [k for k, v in diffs.items() if not v <= TOL]
    if failed:
        print(f"PARITY FAILED (> {TOL:g}): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
