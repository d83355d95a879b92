#!/usr/bin/env bash
# A budget version of Table 1 on the embedded world (the full one is world_tables.sh, ~111 core-hours):
# every fourth prompt of benchmarks/world_prompts.txt (17 prompts: single objects, relations, held-out
# pairs), seed 0, 150 steps (the world default is 300), N=4, S=1, K=all; sds vs reward-sds optimising
# world-clip vs reward-sds optimising world-aesthetic, each scored by the judge and both rewards.
#
#   bash benchmarks/world_table1_quick.sh            # ~20 min on 1 core
set -euo pipefail
cd "$(dirname "$0")/.."
RS=${RS:-rewardsds}
OUT=${OUT:-out/world_table1_quick}
mkdir -p "$OUT"
grep -v '^#' benchmarks/world_prompts.txt | grep -v '^\s*$' | awk 'NR % 4 == 1' > "$OUT/prompts.txt"
"$RS" sweep "$OUT/prompts.txt" --seeds 0 --steps 150 --out "$OUT" --methods sds reward-sds --reward world-clip "$@"
"$RS" sweep "$OUT/prompts.txt" --seeds 0 --steps 150 --out "$OUT" --methods reward-sds --reward world-aesthetic "$@"
"$RS" eval "$OUT" --metrics judge,world-clip,world-aesthetic --baseline sds
"$RS" report "$OUT" --baseline sds
echo "report: $OUT/report.html"
