"""Side by side with the official SSFormer: equivalence of the outputs, then speed ratios.

Usage::

    PYTHONPATH=src python benchmarks/bench_vs_official.py --official-repo DIR [--threads N]

``DIR`` is a checkout of https://github.com/Qiming-Huang/ssformer. Its models import ``mmcv``
(only ``ConvModule``) and, for B4, ``einops`` (unused names); when they are not installed this
script registers small stand-ins written here (``conv``/``bn``/``activate`` as mmcv names them).
Nothing of the official repository is copied; it is imported from ``DIR`` at run time.

Checks (fp32, eval):
1. official ``mit_PLD_b2`` / ``mit_PLD_b4`` with random weights, saved with
   ``torch.save(model.state_dict())`` as the official ``train.py`` does, load into our
   ``SSFormer-S`` / ``SSFormer-L`` with ``ssformer.load_weights``; max |logits diff| <= 1e-4
   (batch 2, 352x352);
2. an official ``mit_b2`` saved in the ImageNet layout (with a ``head.*`` classifier) loads into
   our ``MiT-B2``; the four stage features match.

Then it times SSFormer-S inference at batch 1 (latency) and batch 8 (images per second),
alternating the candidates run by run on the same threads: the official model (eager, as its
``test.py``), ours eager (channels-last), ours compiled (``--compile``: ``torch.compile``, as
``ssformer val/predict --compile``), ours exported to ONNX and run by OpenVINO fp32 and by ONNX
Runtime fp32 (``ssformer predict --runtime ...``: the same runtime layer, threads set to
``--threads``); ``--openvino-bf16`` adds OpenVINO in bf16 for reference (not fp32). For each:
min / median / max of the repeats and the ratio official / candidate (of the medians, and its
range over the rounds of the alternation), and the exports' max |logits diff| against our torch
model on the same inputs. Peak memory: each candidate in its own subprocess, the resident set
size (RSS, from ``/proc/self/status``, so C++ allocations count) after loading and the peak RSS
above it during one call (``VmHWM`` reset through ``/proc/self/clear_refs`` before the call).
Then a training step (batch 2) of both.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

TOLERANCE = 1e-4
SPEED_TARGET = 2.5  # OpenVINO fp32 against the official eager, batch 1 and batch 8
OFFICIAL_MODELS = {
    "SSFormer-S": ("models.mit.mit_PLD_b2", "mit_PLD_b2"),
    "SSFormer-L": ("models.mit.mit_PLD_b4", "mit_PLD_b4"),
}


# ------------------------------------------------------------------- stand-ins for mmcv/einops


class _ConvModuleStandIn(nn.Module):
    """What the official decoder uses of ``mmcv.cnn.ConvModule``: conv -> norm -> act, with
    mmcv's names (``conv``, ``bn`` for BatchNorm, ``activate``) and ``bias='auto'``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool | str = "auto",
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        inplace: bool = True,
        **unused: object,
    ) -> None:
        super().__init__()
        if norm_cfg is not None and norm_cfg.get("type") not in ("BN", "SyncBN"):
            raise NotImplementedError(f"stand-in ConvModule supports BN only, not {norm_cfg}")
        with_norm = norm_cfg is not None
        use_bias = (not with_norm) if bias == "auto" else bool(bias)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=use_bias
        )
        if with_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        act_type = (act_cfg or {"type": "ReLU"}).get("type")
        if act_type != "ReLU":
            raise NotImplementedError(f"stand-in ConvModule supports ReLU only, not {act_type}")
        self.activate = nn.ReLU(inplace=inplace)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        return self.activate(x)


def _unavailable(name: str) -> Callable[..., object]:
    def fail(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"stand-in {name} is not implemented (not used by mit_PLD_b2/b4)")

    return fail


def install_stand_ins() -> list[str]:
    """Register ``mmcv.cnn`` and ``einops`` stand-ins where the real packages are missing."""
    installed = []
    try:
        import mmcv.cnn
    except ImportError:
        mmcv = types.ModuleType("mmcv")
        cnn = types.ModuleType("mmcv.cnn")
        cnn.ConvModule = _ConvModuleStandIn  # type: ignore[attr-defined]
        cnn.build_norm_layer = _unavailable("build_norm_layer")  # type: ignore[attr-defined]
        cnn.build_activation_layer = _unavailable("build_activation_layer")  # type: ignore[attr-defined]
        mmcv.cnn = cnn  # type: ignore[attr-defined]
        sys.modules["mmcv"], sys.modules["mmcv.cnn"] = mmcv, cnn
        installed.append("mmcv.cnn")
    try:
        import einops.layers.torch
    except ImportError:
        einops = types.ModuleType("einops")
        layers = types.ModuleType("einops.layers")
        layers_torch = types.ModuleType("einops.layers.torch")
        einops.rearrange = _unavailable("einops.rearrange")  # type: ignore[attr-defined]
        layers_torch.Rearrange = _unavailable("einops.layers.torch.Rearrange")  # type: ignore[attr-defined]
        einops.layers, layers.torch = layers, layers_torch  # type: ignore[attr-defined]
        sys.modules.update(
            {"einops": einops, "einops.layers": layers, "einops.layers.torch": layers_torch}
        )
        installed.append("einops")
    return installed


def import_official(repo: Path, preset: str) -> type[nn.Module]:
    """The official model class for ``preset``, imported from the checkout ``repo``.

    Its constructor loads ImageNet weights from a hard-coded path of the authors' machine; that
    loader is replaced by a no-op here (weights come from the random state dict instead).
    """
    install_stand_ins()
    repo = Path(repo).resolve()
    if not (repo / "models" / "mit" / "mit_PLD_b2.py").is_file():
        raise SystemExit(f"{repo} is not a checkout of the official SSFormer repository")
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    module_name, class_name = OFFICIAL_MODELS[preset]
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    cls._init_weights = lambda self: None  # skip the hard-coded ImageNet path
    return cls


def randomize_(model: nn.Module, seed: int = 0) -> None:
    """Perturb every parameter and BN statistic so that the key mapping is really tested."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * noise)
            else:
                tensor.add_(0.02 * noise)


# ---------------------------------------------------------------------------------- checks


def check_model_equivalence(
    repo: Path, preset: str, workdir: Path, *, batch: int = 2, size: int = 352, classes: int = 1
) -> float:
    """Max |logits(official) - logits(ours)| for ``preset`` loaded from an official-style file."""
    import ssformer

    official = import_official(repo, preset)(class_num=classes).eval()
    randomize_(official)
    path = workdir / f"{preset}.pth"
    torch.save(official.state_dict(), path)
    ours = ssformer.build_model(preset, num_classes=classes).eval()
    ssformer.load_weights(ours, path)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = official(x)
        got = ours(x)
    if expected.shape != got.shape:
        raise AssertionError(f"shape {tuple(got.shape)} != official {tuple(expected.shape)}")
    return float((expected - got).abs().max())


def check_backbone_equivalence(repo: Path, workdir: Path, *, size: int = 224) -> float:
    """Max |feature diff| of official ``mit_b2`` vs our ``MiT-B2`` from an ImageNet-layout file."""
    from ssformer.models import build_backbone

    cls = import_official(repo, "SSFormer-S")
    official = sys.modules[cls.__module__].mit_b2().eval()
    randomize_(official, seed=2)
    state = dict(official.state_dict())
    state["head.weight"] = torch.randn(1000, 512)  # the ImageNet classifier, to be dropped
    state["head.bias"] = torch.zeros(1000)
    path = workdir / "mit_b2.pth"
    torch.save(state, path)
    ours = build_backbone("MiT-B2", pretrained=path).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = official(x)
        got = ours(x)
    return max(float((e - g).abs().max()) for e, g in zip(expected, got, strict=True))


# ------------------------------------------------------------------------- inference speed

InferenceFn = Callable[[torch.Tensor], torch.Tensor]
EXPORTED = ("openvino fp32", "onnxruntime fp32", "openvino bf16")


def _official_fn(repo: Path) -> InferenceFn:
    official = import_official(repo, "SSFormer-S")(class_num=1).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # as the official test.py
            return official(x)

    return run


def _ours_fn(model: nn.Module, channels_last: bool = True) -> InferenceFn:
    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(x)

    return run


def _compiled_fn() -> InferenceFn:
    import ssformer
    from ssformer.engine.compiled import compile_for_inference

    model = ssformer.build_model("SSFormer-S", num_classes=1)
    compiled = compile_for_inference(model, torch.device("cpu"))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return compiled(x)

    return run


def _exported_fn(name: str, onnx: Path, threads: int) -> InferenceFn:
    """One of :data:`EXPORTED`, run through ssformer's runtime layer (as ``--runtime``)."""
    from dataclasses import replace

    from ssformer.deploy.runtimes import open_export
    from ssformer.deploy.sessions import OpenVINOModel
    from ssformer.deploy.sidecar import read_sidecar

    if name == "openvino bf16":
        model = OpenVINOModel(onnx, replace(read_sidecar(onnx), precision="bf16"), threads)
    else:
        model = open_export(onnx, name.split()[0], threads)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def build_candidates(
    repo: Path,
    workdir: Path,
    *,
    threads: int,
    compile_inference: bool = False,
    exported: tuple[str, ...] = ("openvino fp32", "onnxruntime fp32"),
) -> tuple[dict[str, InferenceFn], Path | None]:
    """The inference candidates (name -> function) and the ONNX export of ``ours`` (made in
    ``workdir`` with ``ssformer export``'s exporter and check, or None without exports)."""
    import ssformer
    from ssformer.deploy.runtimes import export_for_runtime

    ours_model = ssformer.build_model("SSFormer-S", num_classes=1).eval()
    candidates = {"official": _official_fn(repo)}
    onnx = None
    if exported:  # ssformer's exporter and its check (1e-4 at two sizes), as the CLI
        onnx = export_for_runtime(
            ours_model,
            "onnxruntime",
            (352, 352),
            source="SSFormer-S (random weights)",
            folder=workdir,
        ).path
    candidates["ours eager"] = _ours_fn(ours_model)
    if compile_inference:
        candidates["ours compiled"] = _compiled_fn()
    for name in exported:
        candidates[name] = _exported_fn(name, onnx, threads)
    return candidates, onnx


def time_batch(
    candidates: dict[str, InferenceFn],
    batch: int,
    *,
    warmup: int,
    repeats: int,
    size: int = 352,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, tuple[float, ...]], dict[str, float]]:
    """Seconds of each run of each candidate (interleaved), and each export's max |logits
    diff| against ``ours eager`` on the same input."""
    from ssformer.benchmark import time_interleaved

    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    fns = {name: (lambda fn=fn: fn(x)) for name, fn in candidates.items()}
    timings = time_interleaved(
        fns, device=torch.device("cpu"), warmup=max(1, warmup), repeats=repeats, clock=clock
    )
    reference = candidates["ours eager"](x)
    diffs = {
        name: float((fn(x) - reference).abs().max())
        for name, fn in candidates.items()
        if name in EXPORTED
    }
    return {name: timing.times for name, timing in timings.items()}, diffs


def format_batch(
    batch: int,
    times: dict[str, tuple[float, ...]],
    diffs: dict[str, float],
    memory: dict[str, dict[str, float]],
) -> list[str]:
    """The table of one batch size: spread, images/s, ratio to the official (medians, and
    its range over the interleaved rounds), parity and peak memory."""
    official = times["official"]
    lines = [
        f"SSFormer-S inference 352x352, batch {batch}, fp32 unless named, {len(official)} "
        "interleaved rounds (ms per call: min / median / max)",
        f"  {'candidate':<17} {'min':>7} {'median':>7} {'max':>7} {'img/s':>7}  "
        f"{'vs official (rounds)':<22} {'|diff| vs ours':>14} {'RSS MB':>7} {'peak MB':>7}",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        rounds = [o / v for o, v in zip(official, values, strict=True)]
        ratio = f"x{statistics.median(official) / median:.2f} ({min(rounds):.2f}-{max(rounds):.2f})"
        diff = f"{diffs[name]:.1e}" if name in diffs else ""
        mem = memory.get(name, {})
        loaded, peak = mem.get("loaded_mb"), mem.get(f"batch{batch}_peak_mb")
        lines.append(
            f"  {name:<17} {min(values) * 1e3:7.0f} {median * 1e3:7.0f} {max(values) * 1e3:7.0f} "
            f"{batch / median:7.2f}  {ratio:<22} {diff:>14} "
            f"{'-' if loaded is None else f'{loaded:.0f}':>7} "
            f"{'-' if peak is None else f'{peak:.0f}':>7}"
        )
    return lines


# --------------------------------------------------------------------------------- memory


def _status_kb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")  # resets VmHWM (peak RSS) to the current RSS


def memory_probe(
    repo: Path, name: str, onnx: Path | None, batches: list[int], threads: int
) -> dict[str, float]:
    """RSS of candidate ``name`` in this (fresh) process, MB above the RSS before it was
    built: after building (``loaded_mb``) and the peak during one call per batch size (after a
    warm-up call; ``batch{N}_peak_mb``)."""
    import ssformer

    base = _status_kb("VmRSS")
    if name == "official":
        fn = _official_fn(repo)
    elif name == "ours eager":
        fn = _ours_fn(ssformer.build_model("SSFormer-S", num_classes=1))
    elif name == "ours compiled":
        fn = _compiled_fn()
    else:
        assert onnx is not None
        fn = _exported_fn(name, onnx, threads)
    result = {"loaded_mb": (_status_kb("VmRSS") - base) / 1024}
    for batch in batches:
        x = torch.randn(batch, 3, 352, 352)
        fn(x)  # warm-up (OpenVINO and torch.compile compile for the shape here)
        _reset_peak()
        fn(x)
        result[f"batch{batch}_peak_mb"] = (_status_kb("VmHWM") - base) / 1024
    return result


def measure_memory(
    repo: Path, names: list[str], onnx: Path | None, batches: list[int], threads: int
) -> dict[str, dict[str, float]]:
    """:func:`memory_probe` of each candidate, each in its own subprocess."""
    import subprocess

    found: dict[str, dict[str, float]] = {}
    for name in names:
        command = [sys.executable, __file__, "--official-repo", str(repo), "--threads"]
        command += [str(threads), "--memory-probe", name, "--batches", *map(str, batches)]
        if onnx is not None:
            command += ["--probe-onnx", str(onnx)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"memory probe of {name} failed: {done.stderr.strip()[-500:]}")
            continue
        found[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


# ------------------------------------------------------------------------------ train step


def compare_train(
    repo: Path,
    *,
    warmup: int,
    repeats: int,
    size: int = 352,
    channels_last_train: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds of a training step at batch 2: official (its train.py's plain AdamW),
    ours (fused AdamW, our trainer's) and ours with the official optimizer (the model's own
    share)."""
    import ssformer
    from ssformer.benchmark import time_interleaved, train_step_fn

    device = torch.device("cpu")
    official = import_official(repo, "SSFormer-S")(class_num=1)
    fns = {
        "official": train_step_fn(
            official, batch=2, size=size, device=device, fused_optimizer=False
        ),
        "ours": train_step_fn(
            ssformer.build_model("SSFormer-S", num_classes=1),
            batch=2,
            size=size,
            device=device,
            channels_last=channels_last_train,
        ),
        "ours_same_optim": train_step_fn(
            ssformer.build_model("SSFormer-S", num_classes=1),
            batch=2,
            size=size,
            device=device,
            channels_last=channels_last_train,
            fused_optimizer=False,
        ),
    }
    timings = time_interleaved(
        fns, device=device, warmup=max(1, warmup // 2), repeats=max(3, repeats // 2), clock=clock
    )
    return {name: timing.median for name, timing in timings.items()}


# ------------------------------------------------------------------------------------ main


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="official checkout")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10, help="rounds at batch 1")
    parser.add_argument("--repeats-batch8", type=int, default=None, help="default: repeats / 2")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-large", action="store_true", help="skip the SSFormer-L check")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-train", action="store_true", help="inference only")
    parser.add_argument("--skip-memory", action="store_true", help="no memory subprocesses")
    parser.add_argument("--train-channels-last", action="store_true", help="ours: CL training")
    parser.add_argument(
        "--compile", action="store_true", help="also time our inference under torch.compile"
    )
    parser.add_argument(
        "--runtimes",
        nargs="*",
        choices=("openvino", "onnxruntime"),
        default=["openvino", "onnxruntime"],
        help="exported runtimes to time (fp32); none: --runtimes with no value",
    )
    parser.add_argument(
        "--openvino-bf16", action="store_true", help="also OpenVINO in bf16 (for reference)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="process: CPU time of this process (use with --threads 1 on a shared machine)",
    )
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-onnx", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def check_equivalence(args: argparse.Namespace) -> bool:
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        presets = ["SSFormer-S"] if args.skip_large else ["SSFormer-S", "SSFormer-L"]
        for preset in presets:
            diff = check_model_equivalence(args.official_repo, preset, workdir)
            ok &= diff <= TOLERANCE
            print(f"{preset}: max |logits diff| vs official = {diff:.2e} (limit {TOLERANCE:g})")
        diff = check_backbone_equivalence(args.official_repo, workdir)
        ok &= diff <= TOLERANCE
        print(f"MiT-B2 ImageNet file: max |feature diff| vs official = {diff:.2e}")
    return ok


def run_inference(args: argparse.Namespace, clock: Callable[[], float]) -> bool:
    """The inference tables; whether OpenVINO fp32 met the target (x2.5, 1e-4) everywhere."""
    exported = tuple(f"{runtime} fp32" for runtime in args.runtimes)
    exported += ("openvino bf16",) if args.openvino_bf16 else ()
    met = True
    with tempfile.TemporaryDirectory() as tmp:
        candidates, onnx = build_candidates(
            args.official_repo,
            Path(tmp),
            threads=args.threads,
            compile_inference=args.compile,
            exported=exported,
        )
        results = {}
        for batch in args.batches:
            repeats = (
                args.repeats if batch == 1 else args.repeats_batch8 or max(3, args.repeats // 2)
            )
            results[batch] = time_batch(
                candidates,
                batch,
                warmup=args.warmup if batch == 1 else 1,
                repeats=repeats,
                clock=clock,
            )
        names = list(candidates)
        del candidates
        memory = {}
        if not args.skip_memory:
            memory = measure_memory(args.official_repo, names, onnx, args.batches, args.threads)
    for batch, (times, diffs) in results.items():
        print("\n".join(format_batch(batch, times, diffs, memory)))
        if "openvino fp32" in times:
            ratio = statistics.median(times["official"]) / statistics.median(times["openvino fp32"])
            ok = ratio >= SPEED_TARGET and diffs["openvino fp32"] <= TOLERANCE
            met &= ok
            print(
                f"  target OpenVINO fp32 >= x{SPEED_TARGET} the official, logits within "
                f"{TOLERANCE:g}: {'met' if ok else 'NOT met'} (x{ratio:.2f}, "
                f"{diffs['openvino fp32']:.1e})"
            )
    if memory:
        print(
            "  RSS MB: resident set after building the candidate, peak MB: peak RSS during one "
            "call (after a warm-up call), both above the process's RSS before building it; each "
            "candidate in its own process (/proc/self/status VmRSS / VmHWM)"
        )
    return met


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clock = time.process_time if args.clock == "process" else time.perf_counter
    if args.memory_probe is not None:
        probe = memory_probe(
            args.official_repo, args.memory_probe, args.probe_onnx, args.batches, args.threads
        )
        print(json.dumps(probe))
        return 0
    print(f"torch {torch.__version__}, {args.threads} CPU threads, {args.clock} clock")
    ok = check_equivalence(args)
    if not args.skip_speed:
        run_inference(args, clock)
        if not args.skip_train:
            speed = compare_train(
                args.official_repo,
                warmup=args.warmup,
                repeats=args.repeats,
                channels_last_train=args.train_channels_last,
                clock=clock,
            )
            train_ratio = speed["official"] / speed["ours"]
            same_ratio = speed["official"] / speed["ours_same_optim"]
            print(
                f"SSFormer-S train step 352x352 batch 2: official {speed['official'] * 1e3:.1f} "
                f"ms, ours {speed['ours'] * 1e3:.1f} ms, speed-up x{train_ratio:.2f} (target "
                f"1.2); ours with the official (unfused) AdamW "
                f"{speed['ours_same_optim'] * 1e3:.1f} ms, x{same_ratio:.2f}"
            )
    print("equivalence: OK" if ok else "equivalence: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
