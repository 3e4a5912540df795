"""Reusable measurement code: parameters, FLOPs, latency and train-step throughput.

Timing follows the usual rules: warm-up runs first, then repeated runs, the median reported;
``torch.cuda.synchronize`` around every run on a GPU; inference under ``torch.inference_mode``.
:func:`time_interleaved` runs several candidates alternately so that a noisy shared machine
affects all of them alike (use it for side-by-side ratios).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssformer.engine.execution import autocast_dtype
from ssformer.engine.optim import fused_adamw_available
from ssformer.image_size import PAPER_SIDE

__all__ = [
    "BenchResult",
    "Timing",
    "autocast_context",
    "count_flops",
    "count_parameters",
    "inference_fn",
    "measure",
    "measure_exported",
    "state_dict_megabytes",
    "time_callable",
    "time_interleaved",
    "train_step_fn",
]


@dataclass(frozen=True)
class Timing:
    """Seconds per call: ``median`` and ``minimum`` of ``times`` (after warm-up)."""

    median: float
    minimum: float
    times: tuple[float, ...] = field(repr=False)

    @classmethod
    def from_times(cls, times: list[float]) -> Timing:
        return cls(statistics.median(times), min(times), tuple(times))


@dataclass(frozen=True)
class BenchResult:
    """One row of ``ssformer bench``."""

    mode: str  # "inference" or "train"
    precision: str  # "fp32", "bf16", "fp16"
    channels_last: bool
    batch: int
    timing: Timing
    compiled: bool = False
    peak_memory_mib: float | None = None  # peak GPU memory while measuring (CUDA only)
    runtime: str = "torch"  # or "onnxruntime" / "openvino" (an export; see ssformer.deploy)

    @property
    def images_per_second(self) -> float:
        return self.batch / self.timing.median


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(
    fn: Callable[[], object],
    *,
    device: torch.device,
    warmup: int = 3,
    repeats: int = 10,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """Run ``fn`` ``warmup`` times, then time ``repeats`` runs (synchronised).

    ``clock``: ``time.perf_counter`` (wall clock, default) or ``time.process_time`` (CPU time
    of this process: robust on a CPU shared with other jobs when torch uses one thread).
    """
    for _ in range(warmup):
        fn()
    _synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        start = clock()
        fn()
        _synchronize(device)
        times.append(clock() - start)
    return Timing.from_times(times)


def time_interleaved(
    fns: Mapping[str, Callable[[], object]],
    *,
    device: torch.device,
    warmup: int = 3,
    repeats: int = 10,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time several callables alternately (A, B, A, B, ...); returns a Timing per name.

    ``clock`` as in :func:`time_callable`.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            start = clock()
            fn()
            _synchronize(device)
            times[name].append(clock() - start)
    return {name: Timing.from_times(values) for name, values in times.items()}


def autocast_context(
    device: torch.device, amp: bool, amp_dtype: str | None = None
) -> AbstractContextManager[object]:
    """Autocast by the package's precision policy (:func:`autocast_dtype`; ``amp_dtype``
    ``float16`` or ``bfloat16``, default fp16 on CUDA, bf16 on the CPU)."""
    dtype = autocast_dtype(device, amp, amp_dtype)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _example_input(
    batch: int, size: int, device: torch.device, channels_last: bool
) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def inference_fn(
    model: nn.Module,
    *,
    batch: int,
    size: int,
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    amp_dtype: str | None = None,
) -> Callable[[], torch.Tensor]:
    """A closure running one eval forward pass under ``inference_mode`` (model moved, eval).

    ``compile``: :func:`ssformer.engine.compiled.compile_for_inference` (compiled on the first
    call, so warm-up runs must come first).
    """
    if compile:
        from ssformer.engine.compiled import compile_for_inference

        model = compile_for_inference(model, device, channels_last=channels_last)
    else:
        model.to(device).eval()
        if channels_last:
            model.to(memory_format=torch.channels_last)
    x = _example_input(batch, size, device, channels_last)

    def run() -> torch.Tensor:
        with torch.inference_mode(), autocast_context(device, amp, amp_dtype):
            return model(x)

    return run


def train_step_fn(
    model: nn.Module,
    *,
    batch: int,
    size: int,
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
    lr: float = 1e-4,
    fused_optimizer: bool = True,
    amp_dtype: str | None = None,
) -> Callable[[], float]:
    """A closure running one AdamW training step on random data (BCE-with-logits loss).

    ``fused_optimizer``: torch's fused AdamW kernel where torch has one, as the trainer
    (:func:`ssformer.engine.optim.fused_adamw_available`); on a CPU it makes the
    optimizer step about 10x faster than the default per-tensor loop for SSFormer-S.
    """
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    x = _example_input(batch, size, device, channels_last)
    with torch.no_grad():
        classes = int(model(x[:1]).shape[1])
    target = (torch.rand(batch, classes, size, size, device=device) > 0.5).float()
    fused = fused_optimizer and fused_adamw_available(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=fused or None)
    use_scaler = device.type == "cuda" and autocast_dtype(device, amp, amp_dtype) == torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, amp, amp_dtype):
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    return step


def measure(
    model: nn.Module,
    *,
    mode: str,
    batch: int,
    size: int,
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
    warmup: int = 3,
    repeats: int = 10,
    compile: bool = False,
    amp_dtype: str | None = None,
) -> BenchResult:
    """Time inference or one train step of ``model``; returns a :class:`BenchResult` (with the
    peak GPU memory of the measurement on CUDA).

    ``compile`` applies to inference only (training is never compiled); ``amp_dtype`` as in
    :func:`autocast_context`."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    common = {
        "batch": batch,
        "size": size,
        "device": device,
        "amp": amp,
        "channels_last": channels_last,
        "amp_dtype": amp_dtype,
    }
    if mode == "inference":
        fn: Callable[[], object] = inference_fn(model, compile=compile, **common)
    elif mode == "train":
        fn = train_step_fn(model, **common)
    else:
        raise ValueError(f"mode must be 'inference' or 'train', got {mode!r}")
    timing = time_callable(fn, device=device, warmup=warmup, repeats=repeats)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    dtype = autocast_dtype(device, amp, amp_dtype)
    precision = str(dtype).removeprefix("torch.") if dtype is not None else "fp32"
    precision = {"bfloat16": "bf16", "float16": "fp16"}.get(precision, precision)
    return BenchResult(
        mode, precision, channels_last, batch, timing, compiled=compile, peak_memory_mib=peak
    )


def measure_exported(
    model: nn.Module, *, batch: int, size: int, warmup: int = 3, repeats: int = 10
) -> BenchResult:
    """Time inference of an export run by ONNX Runtime or OpenVINO
    (:class:`ssformer.deploy.sessions.ExportedModel`) on random input; at least one warm-up
    run (OpenVINO compiles for the input shape on its first call)."""
    x = _example_input(batch, size, torch.device("cpu"), channels_last=False)

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    timing = time_callable(run, device=torch.device("cpu"), warmup=max(1, warmup), repeats=repeats)
    runtime = str(getattr(model, "runtime", "?"))
    precision = str(getattr(model, "precision", "fp32"))
    return BenchResult("inference", precision, False, batch, timing, runtime=runtime)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(parameter.numel() for parameter in model.parameters())


def state_dict_megabytes(model: nn.Module) -> float:
    """Size of the weights (parameters and buffers) in MB (1e6 bytes)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def count_flops(model: nn.Module, size: int = PAPER_SIDE, batch: int = 1) -> int:
    """FLOPs of one forward pass at ``size`` x ``size`` (``torch.utils.flop_counter``;
    a multiply-add counts as 2 FLOPs).

    The flop counter has no formula for the CPU kernel of fused attention, so attention modules
    with a ``fused_attn`` switch (timm's) run the explicit matmul path while counting.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    fused = [m for m in model.modules() if getattr(m, "fused_attn", None) is True]
    model.eval()
    x = torch.randn(batch, 3, size, size, device=device)
    counter = FlopCounterMode(display=False)
    try:
        for module in fused:
            module.fused_attn = False
        with torch.no_grad(), counter:
            model(x)
    finally:
        for module in fused:
            module.fused_attn = True
        model.train(was_training)
    return int(counter.get_total_flops())
