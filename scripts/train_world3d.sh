#!/usr/bin/env bash
# Train the 3D world's models from fixed seeds. Each stage checkpoints under runs/world3d/ and resumes
# when rerun:
#   1. 3D-world CLIP (view-free captions, hard negatives from world3d.negatives); its text tower is the
#      prior's frozen text encoder, as in the 2D world;
#   2. the view-aware prior (UNet2DConditionModel on single renders with view-suffixed captions);
#   3. the CLIP fine-tuned for relations -> the shipped 3D reward;
#   4. the multi-view prior (MVDream analogue), started from the view-aware prior of stage 2 (MV_STEPS=0
#      skips it).
# Stages 2 and 3 both start from stage 1's CLIP and run side by side when PARALLEL=1; stage 4 follows 2.
# Weights land in rewardsds/world3d/weights/{prior,clip,mvprior}; gates: python -m rewardsds.world3d.evaluate
# and python -m rewardsds.world3d.evaluate_mv.
#
# The shipped weights were trained on one GPU with the defaults below:
#   DEVICE=cuda WORKERS=6 PARALLEL=1 bash scripts/train_world3d.sh
# On a CPU (DEVICE=cpu WORKERS=0, one thread; run it in the background with nohup) the same steps take
# hours: about 1.7 s per CLIP step and 3.5 s per prior step on one free core of a 2-core machine.
# MAX_MINUTES bounds each stage (0 = no bound): a stage stopped early exports what it has and records it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
WORKERS=${WORKERS:-0}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-0}
MAX_MINUTES=${MAX_MINUTES:-0}
CLIP_STEPS=${CLIP_STEPS:-3000}
PRIOR_STEPS=${PRIOR_STEPS:-3000}
FT_STEPS=${FT_STEPS:-600}
MV_STEPS=${MV_STEPS:-3000}
RUN=(--threads "$THREADS" --device "$DEVICE" --workers "$WORKERS" --max-minutes "$MAX_MINUTES")

$PY -m rewardsds.world3d.train.clip --steps "$CLIP_STEPS" --relation-focus 0 "${RUN[@]}" --work runs/world3d/clip \
    --out runs/world3d/clip_v0/weights
prior=($PY -m rewardsds.world3d.train.prior --clip runs/world3d/clip_v0/weights --steps "$PRIOR_STEPS" "${RUN[@]}")
finetune=($PY -m rewardsds.world3d.train.clip --init runs/world3d/clip_v0/weights --steps "$FT_STEPS" --lr 3e-4
          --relation-focus 1 --seed 1 "${RUN[@]}" --work runs/world3d/clip_ft)
mv=($PY -m rewardsds.world3d.train.mvprior --init rewardsds/world3d/weights/prior --lr 2e-4 --warmup 50
    --steps "$MV_STEPS" "${RUN[@]}" --work runs/world3d/mvprior)
if [ "$PARALLEL" = 1 ]; then
    { "${prior[@]}" && if [ "$MV_STEPS" != 0 ]; then "${mv[@]}"; fi; } & pid=$!
    "${finetune[@]}"
    wait "$pid"
else
    "${prior[@]}"
    "${finetune[@]}"
    if [ "$MV_STEPS" != 0 ]; then "${mv[@]}"; fi
fi
