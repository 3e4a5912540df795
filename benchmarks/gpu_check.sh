#!/usr/bin/env bash
# The one-call GPU check: everything worth measuring on a CUDA card, in under 5 minutes.
#
#   bash benchmarks/gpu_check.sh            # from the repository root or anywhere
#
# Prints, in order: the device; `ssformer bench` of SSFormer-S (fp32 / AMP fp16 / AMP bf16,
# channels-last off and on, compiled; batch 1 inference and batch 16 training steps, with peak
# GPU memory); the official SSFormer implementation beside ours on the same card (when a
# checkout is at $SSFORMER_OFFICIAL_REPO or can be cloned); one short training run on synthetic
# data at 352 px with its epoch times. On a machine without a CUDA device it says so and exits
# with status 2 before installing or measuring anything.
#
# Set-up: uses $PYTHON (default: .venv/bin/python if it exists, else python3) when it imports
# ssformer and a CUDA-enabled torch; otherwise creates .venv-gpu and installs the project with
# the pinned torch from the package index (the Makefile's TORCH_SPEC).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no CUDA device (nvidia-smi finds no GPU); nothing measured" >&2
    exit 2
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
usable() { "$1" -c "import torch, timm, ssformer; assert torch.cuda.is_available()" 2>/dev/null; }
if ! usable "$PYTHON"; then
    TORCH_SPEC=$(sed -n 's/^TORCH_SPEC ?= //p' Makefile)
    echo "== installing into .venv-gpu ($TORCH_SPEC and the project)"
    python3 -m venv .venv-gpu
    .venv-gpu/bin/python -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086
    .venv-gpu/bin/python -m pip install --quiet $TORCH_SPEC
    .venv-gpu/bin/python -m pip install --quiet -e .
    PYTHON=.venv-gpu/bin/python
fi
if ! "$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)')); nothing measured" >&2
    exit 2
fi

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" - <<'EOF'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"{torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}, "
      f"bf16 supported: {torch.cuda.is_bf16_supported()}")
EOF

echo "== ssformer bench: SSFormer-S 352x352, inference batch 1, training batch 16"
"$PYTHON" -m ssformer bench SSFormer-S --device cuda --batch 1 --train-batch 16 \
    --amp-dtypes float16 bfloat16 --compile --warmup 3 --repeats 10
echo "== ssformer bench: inference batch 16"
"$PYTHON" -m ssformer bench SSFormer-S --device cuda --batch 16 --modes inference \
    --amp-dtypes float16 bfloat16 --warmup 3 --repeats 10

echo "== official implementation beside ours (same card, interleaved)"
official=${SSFORMER_OFFICIAL_REPO:-}
if [ -z "$official" ]; then
    official=$(mktemp -d)/ssformer-official
    git clone --quiet --depth 1 https://github.com/Qiming-Huang/ssformer "$official" 2>/dev/null \
        || official=""
fi
if [ -n "$official" ]; then
    "$PYTHON" benchmarks/bench_vs_official.py --official-repo "$official" --device cuda \
        --skip-large --warmup 5 --repeats 20 || echo "official comparison failed (above)"
else
    echo "skipped: no checkout of the official repository (set SSFORMER_OFFICIAL_REPO)"
fi

echo "== short training run: synthetic data, 352 px, AMP, batch 16"
work=$(mktemp -d)
"$PYTHON" -m ssformer synth "$work/synthetic" --n 160 --size 352 >/dev/null
"$PYTHON" -m ssformer split "$work/synthetic" >/dev/null
"$PYTHON" -m ssformer train --cfg demo --no-progress --set DEVICE=cuda \
    "DATASET.ROOT=$work/synthetic" "SAVE_DIR=$work/output" "TRAIN.IMAGE_SIZE=[352,352]" \
    "EVAL.IMAGE_SIZE=[352,352]" TRAIN.EPOCHS=3 TRAIN.BATCH_SIZE=16 TRAIN.AMP=true \
    TRAIN.TIME_LIMIT_MIN=3 | grep -E "^(data|model|epoch|test|run finished)"
echo "== gpu_check done in $(( $(date +%s) - started )) s"
