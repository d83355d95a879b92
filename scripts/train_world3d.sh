#!/usr/bin/env bash
# Train the 3D world's models from fixed seeds, on CPU (about 2 h on one free core; each stage
# checkpoints under runs/world3d/ and resumes when rerun; run it in the background with nohup):
#   1. 3D-world CLIP (view-free captions, hard negatives from world3d.negatives); its text tower is the
#      prior's frozen text encoder, as in the 2D world;
#   2. the view-aware prior (UNet2DConditionModel on single renders with view-suffixed captions);
#   3. the CLIP fine-tuned for relations -> the shipped 3D reward.
# Weights land in rewardsds/world3d/weights/{prior,clip}; gates: python -m rewardsds.world3d.evaluate.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rewardsds.world3d.train.clip --steps 2500 --relation-focus 0 --threads 1 --work runs/world3d/clip \
    --out runs/world3d/clip_v0/weights
$PY -m rewardsds.world3d.train.prior --clip runs/world3d/clip_v0/weights --steps 1700 --stop-at 1300 --threads 1
$PY -m rewardsds.world3d.train.clip --init runs/world3d/clip_v0/weights --steps 600 --lr 3e-4 --relation-focus 1 \
    --seed 1 --threads 1 --work runs/world3d/clip_ft
