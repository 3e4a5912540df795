"""Optimisers and LR schedules (ssformer.engine.optim): hand-computed learning rates, resume via
state_dict, parameter groups; and, when the reference sources are given, equality with the
study's schedulers and the official warm-up + step schedule.

Optional references (skipped when unset): ``SSFORMER_STUDY_DIR`` (the study's framework,
``semseg/schedulers.py``), ``SSFORMER_WARMUP_SCHEDULER_DIR`` (a checkout of
pytest-gradual-warmup-lr, ``warmup_scheduler/scheduler.py``, the package the official train.py
imports).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

from ssformer.config import load_config
from ssformer.engine.optim import (
    PolynomialLRDecay,
    WarmupStepLR,
    build_optimizer,
    build_scheduler,
    build_scheduler_from_config,
    current_lr,
)
from ssformer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))


def optimizer(lr: float = 1e-3) -> torch.optim.Optimizer:
    return build_optimizer(tiny_model(), "adamw", lr, 0.01)


def lrs_per_call(scheduler: torch.optim.lr_scheduler.LRScheduler, calls: int) -> list[float]:
    """LR in use before each of ``calls`` step() calls (index = epoch or iteration)."""
    values = []
    for _ in range(calls):
        values.append(current_lr(scheduler.optimizer))
        scheduler.optimizer.step()
        scheduler.step()
    return values


def load_reference(env: str, relative: str) -> ModuleType:
    root = os.environ.get(env)
    if not root or not (Path(root) / relative).is_file():
        pytest.skip(f"set {env} to a checkout holding {relative}")
    spec = importlib.util.spec_from_file_location(f"ref_{env}", Path(root) / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plrd_hand_values() -> None:
    base, end = 0.000149, 1e-4
    sched = build_scheduler("plrd", optimizer(base), epochs=200, iters_per_epoch=50)
    assert sched.interval == "epoch"
    lrs = lrs_per_call(sched, 45)
    assert lrs[0] == pytest.approx(end + (base - end) * 39 / 40)
    assert lrs[1] == pytest.approx(end + (base - end) * 38 / 40)
    assert lrs[19] == pytest.approx(end + (base - end) * 20 / 40)
    assert lrs[38] == pytest.approx(end + (base - end) * 1 / 40)
    assert lrs[39] == pytest.approx(end)
    assert lrs[44] == pytest.approx(end)


def test_warmuppolylr_hand_values() -> None:
    base = 1e-3
    sched = build_scheduler(
        "warmuppolylr",
        optimizer(base),
        epochs=10,
        iters_per_epoch=10,
        power=0.9,
        warmup_epochs=1,
        warmup_ratio=0.1,
    )
    assert sched.interval == "step"
    lrs = lrs_per_call(sched, 101)
    assert lrs[0] == pytest.approx(base * 0.1)
    assert lrs[5] == pytest.approx(base * (0.1 + 0.9 * 5 / 10))
    assert lrs[10] == pytest.approx(base)
    assert lrs[55] == pytest.approx(base * (1 - 45 / 90) ** 0.9)
    assert lrs[100] == pytest.approx(0.0)


def test_official_warmup_step_hand_values() -> None:
    base = 1e-4
    sched = build_scheduler(
        "warmup_step", optimizer(base), epochs=500, iters_per_epoch=1, warmup_epochs=1
    )
    lrs = lrs_per_call(sched, 403)
    assert lrs[0] == 0.0  # the official run trains epoch 0 with lr 0
    assert lrs[1] == pytest.approx(base)
    assert lrs[2] == pytest.approx(base)
    assert lrs[200] == pytest.approx(base)
    assert lrs[201] == pytest.approx(base * 0.1)
    assert lrs[400] == pytest.approx(base * 0.1)
    assert lrs[401] == pytest.approx(base * 0.01)


def test_warmup_step_without_warmup_and_constant() -> None:
    sched = WarmupStepLR(optimizer(1.0), warmup_epochs=0, step_size=3, gamma=0.5)
    assert lrs_per_call(sched, 7) == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.25])
    const = build_scheduler("constant", optimizer(0.2), epochs=3, iters_per_epoch=2)
    assert lrs_per_call(const, 3) == pytest.approx([0.2] * 3)


@pytest.mark.parametrize("name", ["plrd", "warmuppolylr", "warmup_step", "constant"])
def test_scheduler_resumes_from_state_dict(name: str) -> None:
    kwargs = {"epochs": 20, "iters_per_epoch": 3, "warmup_epochs": 2, "step_size": 4}
    model = tiny_model()
    opt = build_optimizer(model, "adamw", 1e-3, 0.01)
    sched = build_scheduler(name, opt, **kwargs)
    lrs_per_call(sched, 7)
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    expected = lrs_per_call(sched, 9)

    resumed_opt = build_optimizer(model, "adamw", 1e-3, 0.01)
    resumed = build_scheduler(name, resumed_opt, **kwargs)
    resumed_opt.load_state_dict(saved_opt)
    resumed.load_state_dict(saved_sched)
    assert resumed.last_epoch == 7
    assert lrs_per_call(resumed, 9) == pytest.approx(expected)


def test_build_scheduler_from_config_uses_the_config() -> None:
    config = load_config(ROOT / "configs" / "ssformer-s-split.yaml")
    opt = build_optimizer(tiny_model(), config.optimizer.name, config.optimizer.lr, 0.01)
    sched = build_scheduler_from_config(config.scheduler, opt, epochs=300, iters_per_epoch=5)
    assert isinstance(sched, WarmupStepLR) and sched.step_size == 200
    seed = load_config(ROOT / "configs" / "kvasir-seg.yaml")
    opt = build_optimizer(tiny_model(), seed.optimizer.name, seed.optimizer.lr, 0.1)
    sched = build_scheduler_from_config(seed.scheduler, opt, epochs=200, iters_per_epoch=50)
    assert isinstance(sched, PolynomialLRDecay) and sched.power == 1.0
    with pytest.raises(ConfigError, match=r"SCHEDULER\.NAME"):
        build_scheduler("cosine", opt, epochs=1, iters_per_epoch=1)


def test_optimizer_parameter_groups() -> None:
    model = tiny_model()
    n_1d = sum(1 for p in model.parameters() if p.dim() == 1)
    study = build_optimizer(model, "adamw", 1e-3, 0.1)
    assert isinstance(study, torch.optim.AdamW)
    assert [g["weight_decay"] for g in study.param_groups] == [0.1, 0.0]
    assert len(study.param_groups[1]["params"]) == n_1d
    assert study.defaults["eps"] == 1e-8 and study.defaults["betas"] == (0.9, 0.999)
    default = build_optimizer(model, "adamw_default", 1e-3, 0.1)
    assert [g["weight_decay"] for g in default.param_groups] == [0.01, 0.0]
    official = build_optimizer(model, "adamw_official", 1e-4, 0.01)
    assert len(official.param_groups) == 1 and official.param_groups[0]["weight_decay"] == 0.01
    sgd = build_optimizer(model, "sgd", 1e-2, 1e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    with pytest.raises(ConfigError, match=r"OPTIMIZER\.NAME"):
        build_optimizer(model, "lion", 1e-3, 0.0)


def test_plrd_and_warmuppolylr_equal_the_study_code() -> None:
    study = load_reference("SSFORMER_STUDY_DIR", "semseg/schedulers.py")
    ref_opt = optimizer(0.000149)
    ref = study.get_scheduler("plrd", ref_opt, 10000, 0.9, 0, 0.1)
    ours = build_scheduler("plrd", optimizer(0.000149), epochs=200, iters_per_epoch=50)
    assert lrs_per_call(ours, 60) == pytest.approx(lrs_per_call(ref, 60), rel=1e-12)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = study.get_scheduler("warmuppolylr", optimizer(1e-3), 100, 0.9, 10, 0.1)
        ours = build_scheduler(
            "warmuppolylr",
            optimizer(1e-3),
            epochs=10,
            iters_per_epoch=10,
            power=0.9,
            warmup_epochs=1,
            warmup_ratio=0.1,
        )
        assert lrs_per_call(ours, 100) == pytest.approx(lrs_per_call(ref, 100), rel=1e-9)


def test_warmup_step_equals_the_official_schedule() -> None:
    ref_module = load_reference("SSFORMER_WARMUP_SCHEDULER_DIR", "warmup_scheduler/scheduler.py")
    ref_opt = torch.optim.AdamW(tiny_model().parameters(), lr=1e-4)
    step_lr = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=200, gamma=0.1)
    ref = ref_module.GradualWarmupScheduler(
        ref_opt, multiplier=1, total_epoch=1, after_scheduler=step_lr
    )
    ours = build_scheduler(
        "warmup_step", optimizer(1e-4), epochs=650, iters_per_epoch=1, warmup_epochs=1
    )
    expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in range(650):  # the official loop: scheduler.step(epoch) at epoch start
            ref.step(epoch)
            expected.append(ref_opt.param_groups[0]["lr"])
    assert lrs_per_call(ours, 650) == pytest.approx(expected, rel=1e-9, abs=0.0)
