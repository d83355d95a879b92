#!/usr/bin/env bash
# Reproduce the paper's tables on the embedded world: sweep + eval + report per table, seeds 0 1 2,
# the 65 prompts of benchmarks/world_prompts.txt (regenerate with benchmarks/make_world_prompts.py).
#
#   bash benchmarks/world_tables.sh                        # local processes, one per core
#   OUT=out/world bash benchmarks/world_tables.sh --workers 16
#   bash benchmarks/world_tables.sh --ray auto             # on an existing Ray cluster
#
# Extra arguments go to every `rewardsds sweep`. Everything is resumable: rerunning the script skips
# finished runs (and eval skips scored ones), so it can be stopped and restarted at any point.
# Needs the shipped world models (rewardsds/world/weights/{prior,clip,aesthetic}).
#
# Tables (one sweep folder each; every report.html has the tables, gallery, curves, cost vs quality):
#   table1   sds vs reward-sds with reward world-clip and with world-aesthetic, each scored by both
#            rewards and the judge (paper Table 1: cross-evaluation, reward hacking shows up here)
#   table5   the six weighting schemes of reward-sds (paper Table 5)
#   ablN     N = 2, 4, 8 noise candidates          (paired against the default N=4)
#   ablS     S = 1, 5, 15 preview denoising steps  (paired against the default S=1)
#   ablK     K = 10%, 50%, 100% of steps rewarded  (paired against the default K=100%)
#   vsd      vsd vs reward-vsd
#   bridge   bridge vs reward-bridge
#
# COST ESTIMATE (not run; from one tiny timing, 6-10 steps per method, of the world prior's and
# world CLIP's real architectures with random weights, 1 torch thread, CPU, on a 2-core machine that
# was also training a model under nice 15 - so likely pessimistic by up to ~2x):
#   seconds per step:  sds 0.049, bridge 0.048, vsd 0.17, reward-sds (N=4, S=1) 0.18,
#                      reward-vsd 0.35; each extra candidate +0.043; each extra preview step
#                      (S > 1, N=4) +0.16
#   per run (300 steps, the world default; + ~2 s to load models and write outputs):
#                      sds 15 s, reward-sds 54 s, N=8 106 s, S=5 247 s, S=15 730 s, vsd 51 s,
#                      reward-vsd 104 s
#   65 prompts x 3 seeds = 195 runs per variant; 4485 runs in all:
#     table1  3 variants    24,000 s        ablN  3 variants    36,700 s
#     table5  7 variants    66,100 s        ablS  3 variants   201,000 s   <- half of the total
#     ablK    3 variants    20,900 s        vsd   2 variants    30,200 s
#     bridge  2 variants    13,500 s        loading/writing     ~9,000 s
#   total ~401,000 CPU-core seconds = ~111 core-hours: ~7 h on 16 cores, ~56 h on 2 cores.
#   eval (judge + two 32 px CLIPs on 4485 images) and the reports take minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
RS=${RS:-rewardsds}
OUT=${OUT:-out/world}
PROMPTS=${PROMPTS:-benchmarks/world_prompts.txt}
SEEDS=(0 1 2)
METRICS=judge,world-clip,world-aesthetic

sweep() {  # sweep DIR [sweep options...]
  local dir=$1
  shift
  "$RS" sweep "$PROMPTS" --seeds "${SEEDS[@]}" --out "$OUT/$dir" "$@" ${EXTRA[@]+"${EXTRA[@]}"}
}

evaluate() {  # evaluate DIR BASELINE
  "$RS" eval "$OUT/$1" --metrics "$METRICS" --baseline "$2"
  "$RS" report "$OUT/$1" --baseline "$2"
}

EXTRA=("$@")

# Table 1: optimise one reward, score with both rewards and the judge.
sweep table1 --methods sds reward-sds --reward world-clip
sweep table1 --methods reward-sds --reward world-aesthetic
evaluate table1 sds

# Table 5: weighting schemes (top-bottom is the paper's default).
sweep table5 --methods sds
for w in random softmax wta topk best-worst top-bottom; do
  sweep table5 --methods reward-sds --reward world-clip --weighting "$w"
done
evaluate table5 sds

# Ablations of N, S and K, each against the default setting.
for n in 2 4 8; do sweep ablN --methods reward-sds --reward world-clip --n-noises "$n"; done
evaluate ablN "reward-sds [n_noises=4]"
for s in 1 5 15; do sweep ablS --methods reward-sds --reward world-clip --denoise-steps "$s"; done
evaluate ablS "reward-sds [denoise_steps=1]"
for k in 0.1 0.5 1.0; do sweep ablK --methods reward-sds --reward world-clip --reward-steps "$k"; done
evaluate ablK "reward-sds [reward_steps=1]"

# The other distillation methods with and without rewards.
sweep vsd --methods vsd reward-vsd --reward world-clip
evaluate vsd vsd
sweep bridge --methods bridge reward-bridge --reward world-clip
evaluate bridge bridge

echo "reports: $OUT/{table1,table5,ablN,ablS,ablK,vsd,bridge}/report.html"
