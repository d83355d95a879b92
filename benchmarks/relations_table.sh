#!/usr/bin/env bash
# Two-object prompts: SDS vs RewardSDS on the relational prompts of the world benchmark, with the
# start-from-samples lever and its control. Sweep + eval + by-category, resumable (reruns skip done runs).
#
#   bash benchmarks/relations_table.sh                        # 32 relational prompts x seeds 0 1
#   SEEDS=0 EVERY=4 bash benchmarks/relations_table.sh        # a pilot: every 4th prompt, one seed
#   RESULTS=benchmarks/results/relations_table bash ...       # also copy eval.md/.json/.log + report.html there
#
# Variants (150 steps, world defaults otherwise; N = 4, S = 1, top-bottom, world-clip):
#   sds                                  colour init (the paper's and Table 1's baseline)
#   reward-sds                           colour init
#   sds [init_samples=N]                 starts from a plain prior sample (the first of N: no reward)
#   reward-sds [init_samples=N]          starts from the best of N prior samples by world-clip
# The third row is the control of the fourth: a prior sample's layout without the reward's pick.
# Cost per image on one core (1 torch thread): sds ~25 s, reward-sds ~95 s on the machine that made the
# README's figures (about 2.6x the world_tables.sh header's); the N samples add ~3 s.
set -euo pipefail

cd "$(dirname "$0")/.."
RS=${RS:-rewardsds}
PY=${PY:-$( [[ -x $(dirname "$RS")/python ]] && echo "$(dirname "$RS")/python" || echo python3 )}
OUT=${OUT:-out/relations_table}
STEPS=${STEPS:-150}
EVERY=${EVERY:-1}
INIT_SAMPLES=${INIT_SAMPLES:-4}
read -r -a SEEDS <<< "${SEEDS:-0 1}"
WORKERS=${WORKERS:-0}

mkdir -p "$OUT"
awk '/^#/ {rel = (tolower($0) ~ /relation/ && tolower($0) !~ /held-out/); next} rel && NF' \
  benchmarks/world_prompts.txt | awk -v k="$EVERY" '(NR - 1) % k == 0' > "$OUT/prompts.txt"
echo "$(wc -l < "$OUT/prompts.txt") relational prompts x seeds ${SEEDS[*]} -> $OUT"

sweep() {  # exit 1 = some runs failed (listed; a rerun retries them): keep going with the rest
  "$RS" sweep "$OUT/prompts.txt" --seeds "${SEEDS[@]}" --steps "$STEPS" --out "$OUT" --workers "$WORKERS" \
    --methods sds reward-sds "$@" || [[ $? == 1 ]]
}
sweep
sweep --init-samples "$INIT_SAMPLES"

"$RS" eval "$OUT" --metrics judge,world-clip --baseline sds | tee "$OUT/eval.log"
"$RS" report "$OUT" --baseline sds --title "world relations ($STEPS steps)"
"$PY" benchmarks/world_by_category.py "$OUT" --metrics judge,judge-all,world-clip > /dev/null
if [[ -n ${RESULTS:-} ]]; then
  mkdir -p "$RESULTS"
  cp "$OUT"/{eval.md,eval.json,eval.log,report.html,by_category.md,prompts.txt} "$RESULTS/"
fi
