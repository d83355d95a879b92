#!/usr/bin/env bash
# Reproduce every shipped model of the embedded world from fixed seeds, on CPU (about 3 h on 2 cores
# when run alone; each stage checkpoints under runs/world/ and resumes when rerun).
#
# These are the exact stages the shipped weights came from (see each training_record.json):
#   1. world CLIP, stage 1: contrastive with hard negatives drawn uniformly; its text tower is the
#      prior's frozen text encoder (as CLIP's is Stable Diffusion's);
#   2. the prior, conditioned on that text tower (cosine schedule over 1700 steps, stopped at 1300 for time);
#   3. world CLIP, stages 2-3: fine-tuned for relations (inverted-relation negatives always present,
#      then position-swapped twins in the batch) -> the shipped CLIP reward;
#   4. the aesthetic reward.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m rewardsds.world.train.clip --steps 2500 --relation-focus 0 --work runs/world/clip --out runs/world/clip_v0/weights
$PY -m rewardsds.world.train.prior --clip runs/world/clip_v0/weights --steps 1700 --stop-at 1300 --threads 1
$PY -m rewardsds.world.train.clip --init runs/world/clip_v0/weights --steps 600 --lr 3e-4 --relation-focus 1 \
    --seed 1 --work runs/world/clip_ft --out runs/world/clip_ft1
$PY -m rewardsds.world.train.clip --init runs/world/clip_ft1 --steps 800 --lr 3e-4 --relation-focus 1 \
    --swap-pairs 0.25 --seed 2 --work runs/world/clip_ft2 --out rewardsds/world/weights/clip
$PY -m rewardsds.world.train.aesthetic --threads 1
