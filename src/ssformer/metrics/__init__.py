"""Polyp-segmentation metrics, each named by the convention (and the paper) it follows.

Every number this package reports names its convention (see :data:`METRIC_CONVENTIONS`):

``mDice``, ``mIoU`` -- PraNet evaluation toolbox (Fan et al., MICCAI 2020; used by the SSFormer
    paper, Wang et al., MICCAI 2022, and by Polyp-PVT). Per image: the probability map at the
    original GT size is min-max normalised like MATLAB ``mapminmax`` (a constant map is left as
    it is); GT = pixel > 128; for each of the 256 thresholds of MATLAB ``Thresholds = 1:-1/255:0``
    (we use the same values as ``numpy.linspace(1, 0, 256)``, i.e. ``t_k = k/255`` up to one ulp)
    the map is binarised with ``>= t`` (the toolbox's ``Fmeasure_calu``) and
    ``Dice = 2 TP / (|G| + |P|)``, ``IoU = TP / (|G| + FP)``, both defined as 0 when ``TP = 0``.
    Mean over the 256 thresholds, then mean over images. Under ``EVAL.RECIPE: pranet-toolbox``
    these (and every PySODMetrics-style metric below) come from the 8-bit map the toolbox reads
    (``saved_map``, :func:`saved_map_histograms`); otherwise from the float map.
``Dice@0.5``, ``IoU@0.5`` -- FCBFormer (Sanderson & Matuszewski, MIUA 2022): per image, the
    probability binarised with ``> 0.5`` (no normalisation), GT = pixel > 128, mean over images.
    Like its ``sklearn.metrics.f1_score``/``jaccard_score``, an image whose GT and prediction are
    both empty scores 0. (FCBFormer itself scores at 352x352; we score at whatever size is given,
    normally the original GT size.)
``official_dice``, ``official_iou`` -- the official SSFormer ``test.py``: the sigmoid probability
    (bilinearly resized, ``align_corners=False``, to the image size, see
    :func:`resize_probability`) is binarised with ``> 0.5``, then min-max normalised with
    ``(p - min) / (max - min + 1e-8)`` in float32 (so a constant map, e.g. an all-foreground
    prediction, becomes all zeros), then the 256-threshold loop of ``np.linspace(1, 0, 256)``
    with ``>=`` and the toolbox's ``Fmeasure_calu`` (0 when ``TP = 0``); GT = pixel == 255.
    For a non-constant binary map this equals ``(255 * Dice(bin) + Dice(all ones)) / 256``.
``mIoU_2cls``, ``mDice_2cls`` -- the reproduction study's framework (``semseg/metrics.py``): one
    confusion matrix pooled over all pixels of all images at the model input size (under the
    ``study`` recipe the study's aspect-kept size, label = mask pixel == 255),
    prediction = argmax over 2 classes (for a 1-channel sigmoid model: ``prob > 0.5``), per class
    ``IoU = diag / (rows + cols - diag)`` and ``F1 = 2 diag / (rows + cols)``, classes whose value
    is NaN (absent from GT and prediction) dropped, mean over background and polyp, x100. The
    study rounds to 2 decimals for display; we return the unrounded value.
PySODMetrics conventions (Pang et al.'s ``py_sod_metrics``, the reference implementation the
    polyp papers' Python evaluations use), on the ``mapminmax``-normalised map p (float64) with
    GT = pixel > 128, every value a mean over images:

    ``S_alpha`` -- S-measure (Fan et al., "Structure-measure: A New Way to Evaluate Foreground
    Maps", ICCV 2017), alpha = 0.5: object part (foreground/background mean and std) plus region
    part (four quadrants split at the rounded GT centroid, SSIM each), as ``Smeasure``; GT all
    background: ``1 - mean(p)``, all foreground: ``mean(p)`` (:mod:`.structure`).
    ``E_phi_mean``/``E_phi_max``/``E_phi_adp`` -- E-measure (Fan et al., "Enhanced-alignment
    Measure for Binary Foreground Map Evaluation", IJCAI 2018) as ``Emeasure``: per image the
    curve over the 256 thresholds ``floor(255 p) >= k``; mean / max over thresholds of the
    curve averaged over images, and its value at the adaptive threshold
    ``p >= min(2 mean(p), 1)``.
    ``Fw_beta`` -- weighted F-measure (Margolin et al., "How to Evaluate Foreground Maps?", CVPR
    2014), beta^2 = 1, as ``WeightedFmeasure`` (:mod:`.weighted_f`); an empty GT scores 0.
    ``Fm_mean``/``Fm_max``/``Fm_adp`` -- F-measure with beta^2 = 0.3 (Achanta et al. CVPR 2009)
    as ``Fmeasure``: the same thresholds and adaptive threshold as ``E_phi``; precision is 0
    where nothing is predicted, recall is over ``max(|G|, 1)``; the dataset-mean precision,
    recall and F curves are in :meth:`SegmentationEvaluator.curves`.
    ``MAE`` -- mean absolute error ``mean |p - G|``.

    All of them are computed here in torch (CPU or CUDA, whatever device the tensors are on),
    vectorised over pixels, thresholds and the images of a batch (``update_batch``); PySODMetrics
    is not needed at run time (the tests use it as the reference and agree to 1e-6 or better;
    see each module for the exact arithmetic and its degenerate cases). The steps that are not
    torch belong to ``Fw_beta``: the GT's Euclidean distance transform (OpenCV's exact
    transform, on the CPU; it depends on the GT only) and, for CPU tensors, its 7x7 blur
    (OpenCV's separable filter in float64); on the CPU ``Fw_beta`` runs in a worker thread
    while the other metrics are computed.

All threshold metrics come from one pass per image: each pixel's threshold bin is
``floor(255 p)`` (re-checked exactly against the thresholds where ``255 p`` is within rounding of
an integer) and one ``torch.bincount`` over ``(image, gt, bin)`` gives the foreground and
background histograms of a batch; reverse cumulative sums give TP and predicted-positive counts
at all 256 thresholds at once.

Edge cases (all follow the convention's reference code):
  empty GT: ``mDice``/``mIoU``/``official_*`` = 0 (TP is always 0); ``Dice@0.5``/``IoU@0.5`` = 0;
  ``Fw_beta`` = 0; ``S_alpha`` = 1 - mean(p); ``E_phi`` from PySODMetrics' all-background rule
  (the predicted background fraction); ``Fm`` = 0.
  all-foreground GT: the formulas apply as they are; ``S_alpha`` = mean(p); ``E_phi`` = the
  predicted foreground fraction.
  constant probability map: ``mDice`` keeps its value (``mapminmax``); ``official_*`` turns it to
  zeros, so only the threshold ``t = 0`` predicts anything (an all-foreground prediction scores
  about 1/256 of its Dice there).
  ``E_phi`` divides by ``N - 1`` like PySODMetrics/MATLAB, so ``E_phi_max`` can exceed 1 by
  ``1/(N-1)`` (e.g. a perfect prediction; a 1-pixel image divides by eps).
  ``S_alpha`` is NaN, as in PySODMetrics, when the GT centroid lies in the last row or column
  (an empty quadrant), e.g. a GT of one pixel in the bottom row; the dataset mean is then NaN.
"""

from __future__ import annotations

from ssformer.metrics.conventions import (
    DEFAULT_METRICS,
    DISPLAY_NAMES,
    METRIC_CONVENTIONS,
    NUM_THRESHOLDS,
    PER_IMAGE_METRICS,
    POOLED_METRICS,
    PYSOD_METRICS,
)
from ssformer.metrics.evaluator import CURVE_NAMES, SegmentationEvaluator, evaluate_pairs
from ssformer.metrics.inputs import normalize_minmax, resize_probability
from ssformer.metrics.structure import s_measure
from ssformer.metrics.thresholds import (
    absolute_error_sum,
    binned_histograms,
    dice_iou_curves,
    emeasure_curve,
    emeasure_curves,
    fmeasure_curves,
    official_binary_value,
    saved_map_histograms,
    threshold_counts,
)
from ssformer.metrics.weighted_f import squared_distances, weighted_fmeasure

__all__ = [
    "CURVE_NAMES",
    "DEFAULT_METRICS",
    "DISPLAY_NAMES",
    "METRIC_CONVENTIONS",
    "NUM_THRESHOLDS",
    "PER_IMAGE_METRICS",
    "POOLED_METRICS",
    "PYSOD_METRICS",
    "SegmentationEvaluator",
    "absolute_error_sum",
    "binned_histograms",
    "dice_iou_curves",
    "emeasure_curve",
    "emeasure_curves",
    "evaluate_pairs",
    "fmeasure_curves",
    "normalize_minmax",
    "official_binary_value",
    "resize_probability",
    "s_measure",
    "saved_map_histograms",
    "squared_distances",
    "threshold_counts",
    "weighted_fmeasure",
]
