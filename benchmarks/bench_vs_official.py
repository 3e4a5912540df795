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

Then it times SSFormer-S inference (batch 1) and a training step (batch 2) of both, alternating
runs on the same threads, and prints the ratios official / ours; ``--compile`` adds our
inference compiled with ``torch.compile`` (``ssformer val/predict --compile``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

TOLERANCE = 1e-4
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


# ----------------------------------------------------------------------------------- speed


def compare_speed(
    repo: Path,
    *,
    warmup: int,
    repeats: int,
    size: int = 352,
    channels_last: bool = True,
    channels_last_train: bool = False,
    compile_inference: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds of official and ours: inference batch 1 and a train step at batch 2.

    ``channels_last`` applies to our inference, ``channels_last_train`` to our train step
    (on CPUs channels-last did not pay for training in our measurements);
    ``compile_inference`` adds our inference compiled with ``torch.compile`` (Inductor with
    freezing; compiled during the warm-up, which is not timed).
    """
    import ssformer
    from ssformer.benchmark import inference_fn, time_interleaved, train_step_fn

    device = torch.device("cpu")
    cls = import_official(repo, "SSFormer-S")
    results: dict[str, float] = {}

    official = cls(class_num=1)
    ours = ssformer.build_model("SSFormer-S", num_classes=1)
    official.eval()

    def official_inference() -> torch.Tensor:
        with torch.no_grad():  # as the official test.py
            return official(x)

    x = torch.randn(1, 3, size, size)
    ours_inference = inference_fn(
        ours, batch=1, size=size, device=device, channels_last=channels_last
    )
    candidates = {"official": official_inference, "ours": ours_inference}
    if compile_inference:
        candidates["ours_compiled"] = inference_fn(
            ssformer.build_model("SSFormer-S", num_classes=1),
            batch=1,
            size=size,
            device=device,
            channels_last=True,
            compile=True,
        )
    timings = time_interleaved(
        candidates, device=device, warmup=max(warmup, 1), repeats=repeats, clock=clock
    )
    results["inference_official_s"] = timings["official"].median
    results["inference_ours_s"] = timings["ours"].median
    if compile_inference:
        results["inference_ours_compiled_s"] = timings["ours_compiled"].median

    # Train step: official = its train.py's plain AdamW; ours = fused AdamW (our trainer's).
    # "ours_same_optim" uses the official optimizer too, to show the model's own share.
    official_train = train_step_fn(
        official, batch=2, size=size, device=device, fused_optimizer=False
    )
    ours_train = train_step_fn(
        ssformer.build_model("SSFormer-S", num_classes=1),
        batch=2,
        size=size,
        device=device,
        channels_last=channels_last_train,
    )
    ours_same = train_step_fn(
        ssformer.build_model("SSFormer-S", num_classes=1),
        batch=2,
        size=size,
        device=device,
        channels_last=channels_last_train,
        fused_optimizer=False,
    )
    timings = time_interleaved(
        {"official": official_train, "ours": ours_train, "ours_same_optim": ours_same},
        device=device,
        warmup=max(1, warmup // 2),
        repeats=max(3, repeats // 2),
        clock=clock,
    )
    results["train_official_s"] = timings["official"].median
    results["train_ours_s"] = timings["ours"].median
    results["train_ours_same_optim_s"] = timings["ours_same_optim"].median
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-repo", type=Path, required=True, help="official checkout")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-large", action="store_true", help="skip the SSFormer-L check")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true", help="ours: NCHW inference")
    parser.add_argument("--train-channels-last", action="store_true", help="ours: CL training")
    parser.add_argument(
        "--compile", action="store_true", help="also time our inference under torch.compile"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "process"),
        default="wall",
        help="process: CPU time of this process (use with --threads 1 on a shared machine)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} CPU threads, fp32, {args.clock} clock")

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

    if not args.skip_speed:
        speed = compare_speed(
            args.official_repo,
            warmup=args.warmup,
            repeats=args.repeats,
            channels_last=not args.no_channels_last,
            channels_last_train=args.train_channels_last,
            compile_inference=args.compile,
            clock=time.process_time if args.clock == "process" else time.perf_counter,
        )
        inference_ratio = speed["inference_official_s"] / speed["inference_ours_s"]
        train_ratio = speed["train_official_s"] / speed["train_ours_s"]
        print(
            f"SSFormer-S inference 352x352 batch 1: official {speed['inference_official_s'] * 1e3:.1f} ms, "
            f"ours {speed['inference_ours_s'] * 1e3:.1f} ms, speed-up x{inference_ratio:.2f} (target 1.5)"
        )
        if "inference_ours_compiled_s" in speed:
            compiled_ratio = speed["inference_official_s"] / speed["inference_ours_compiled_s"]
            print(
                f"SSFormer-S inference 352x352 batch 1, ours compiled (torch.compile, freezing): "
                f"{speed['inference_ours_compiled_s'] * 1e3:.1f} ms, speed-up "
                f"x{compiled_ratio:.2f} (target 1.5)"
            )
        same_ratio = speed["train_official_s"] / speed["train_ours_same_optim_s"]
        print(
            f"SSFormer-S train step 352x352 batch 2: official {speed['train_official_s'] * 1e3:.1f} ms, "
            f"ours {speed['train_ours_s'] * 1e3:.1f} ms, speed-up x{train_ratio:.2f} (target 1.2); "
            f"ours with the official (unfused) AdamW {speed['train_ours_same_optim_s'] * 1e3:.1f} ms, "
            f"x{same_ratio:.2f}"
        )
    print("equivalence: OK" if ok else "equivalence: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
