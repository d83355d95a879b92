#!/usr/bin/env bash
# Two-object prompts: SDS vs RewardSDS on the relational prompts of the world benchmark, with the
# start-from-samples lever and its control. Sweep + eval + by-category, resumable (reruns skip done runs).
#
#   bash benchmarks/relations_table.sh                        # 32 relational prompts x seeds 0 1
#   SEEDS=0 EVERY=4 bash benchmarks/relations_table.sh        # a pilot: every 4th prompt, one seed
#   RESULTS=benchmarks/results/relations_table bash ...       # also copy eval.md/.json/.log + report.html there
#
# Variants (150 steps, world defaults otherwise; N = 4, S = 1, top-bottom, world-clip):
#   BASE_METHODS with BASE (default "--cfg 20 --init-samples 0"): the world's defaults before issue 11,
#   sds and reward-sds distilled at CFG 20 from the backdrop colour (the first rounds' Table 1 rows)
#   LEVER_METHODS with LEVER (default: nothing, today's defaults): reward-sds starts from the best of 4
#   prior samples by world-clip and distils at CFG 7.5; sds from the first of them (no reward): the
#   control that separates the reward's pick from merely starting at a prior sample.
#   BASELINE: the eval's baseline variant (default: today's sds, "sds [cfg=7.5, init_samples=4]")
#   e.g. BASE_METHODS=sds LEVER="--init-samples 8" BASELINE="sds [cfg=20, init_samples=0]" bash ...
# Cost per image on one core (1 torch thread): sds ~25 s, reward-sds ~100 s on the machine that made the
# README's figures (about 3x the world_tables.sh header's); the 4 samples add ~9 CPU-s.
set -euo pipefail

cd "$(dirname "$0")/.."
RS=${RS:-rewardsds}
PY=${PY:-$( [[ -x $(dirname "$RS")/python ]] && echo "$(dirname "$RS")/python" || echo python3 )}
OUT=${OUT:-out/relations_table}
STEPS=${STEPS:-150}
EVERY=${EVERY:-1}
read -r -a SEEDS <<< "${SEEDS:-0 1}"
read -r -a BASE <<< "${BASE---cfg 20 --init-samples 0}"
read -r -a LEVER <<< "${LEVER-}"
BASELINE=${BASELINE:-sds [cfg=7.5, init_samples=4]}
read -r -a BASE_METHODS <<< "${BASE_METHODS-sds reward-sds}"
read -r -a LEVER_METHODS <<< "${LEVER_METHODS-sds reward-sds}"
WORKERS=${WORKERS:-0}

mkdir -p "$OUT"
awk '/^#/ {rel = (tolower($0) ~ /relation/ && tolower($0) !~ /held-out/); next} rel && NF' \
  benchmarks/world_prompts.txt | awk -v k="$EVERY" '(NR - 1) % k == 0' > "$OUT/prompts.txt"
echo "$(wc -l < "$OUT/prompts.txt") relational prompts x seeds ${SEEDS[*]} -> $OUT"

sweep() {  # sweep METHODS... -- [options]; exit 1 = some runs failed (a rerun retries them): keep going
  local methods=()
  while [[ $1 != -- ]]; do methods+=("$1"); shift; done
  shift
  (( ${#methods[@]} )) || return 0
  "$RS" sweep "$OUT/prompts.txt" --seeds "${SEEDS[@]}" --steps "$STEPS" --out "$OUT" --workers "$WORKERS" \
    --methods "${methods[@]}" "$@" || [[ $? == 1 ]]
}
sweep ${BASE_METHODS[@]+"${BASE_METHODS[@]}"} -- ${BASE[@]+"${BASE[@]}"}
sweep ${LEVER_METHODS[@]+"${LEVER_METHODS[@]}"} -- ${LEVER[@]+"${LEVER[@]}"}

"$RS" eval "$OUT" --metrics judge,world-clip --baseline "$BASELINE" | tee "$OUT/eval.log"
"$RS" report "$OUT" --baseline "$BASELINE" --title "world relations ($STEPS steps)"
"$PY" benchmarks/world_by_category.py "$OUT" --metrics judge,judge-all,world-clip --baseline "$BASELINE" > /dev/null
if [[ -n ${RESULTS:-} ]]; then
  mkdir -p "$RESULTS"
  cp "$OUT"/{eval.md,eval.json,eval.log,report.html,by_category.md,prompts.txt} "$RESULTS/"
fi
