"""Where SDS fails most: why RewardSDS lifts the judge on single objects but hardly on relations.

    OMP_NUM_THREADS=1 python benchmarks/relations_diagnosis.py [--k 8] [--seeds 0] [--steps 150]
        [--methods sds reward-sds] [--oracle] [--prior-samples 8] [--prior-cfgs 4 20] [--prior DIR]
        [--parts prior renders runs] [--tag SUFFIX] [--records FILE.jsonl]
        [--out benchmarks/results/relations_diagnosis]

Cost: a RewardSDS run is ~25 s and an SDS run ~7.5 s on one idle core (world_tables.sh), plus the
judging of the current image and the N previews on every step (~8 ms per judge call). Measured here
while 5-9 other processes shared the 2 cores: 27 min wall for 8 prompts x (sds,
reward-sds) + 64 prior samples; --oracle adds about one RewardSDS run per prompt.

On K two-object prompts with a spatial relation (every `--every`-th line of the relations section of
benchmarks/world_prompts.txt), with the world defaults of the paper tables (150 steps, N = 4, S = 1,
top-bottom weights, world-clip, CFG 20, preview CFG 7.5, init = background colour), it measures:

1. prior: DDIM samples of the world prior on the same prompts (`rewardsds.sampling.sample`, the
   sampler `world-eval` uses; 50 steps, CFG 4 and any other `--prior-cfgs`): judge accuracy, every fact
   right, relation right, and the failure classes of (4);
2. candidates: on every reward step (recorded through `loop.run(on_step=...)`), the judge's verdict on
   each of the N previews: how often ANY preview has the relation right, how different the N previews
   are (mean pairwise RMS pixel distance; number of distinct judge fact-vectors), and whether the
   reward's top candidate has more judge facts right than its bottom one (ranking agreement), binned
   by t; also whether the previews keep the current image's layout;
3. reward: world-clip's relation reading: does it score the caption above its relation-swapped caption
   (`world.negatives.swapped`) on the top preview, how often its preference agrees with the judge on
   previews whose layout the judge can read, how large that true-vs-swapped gap is next to the spread of
   the N candidates' rewards, and the same on clean renders of scenes satisfying the caption (and on
   blurred renders, `world.degrade`);
4. optimisation: the final images' failure classes from the judge's facts and components (fewer
   components than stated, more, twin = one stated object drawn twice, wrong colour, wrong shape,
   relation wrong with the right objects) and when the current image's layout locks in.

The judge's own relation fact is vacuous for a twin (two copies of one object satisfy "A left of B" by
taking them in the right order), so the relation is read strictly here: right only when both stated
colours are found in two different components ("distinct objects"); the judge's fact is shown beside it
as "lenient".

`--oracle` adds a RewardSDS run whose reward is the judge itself (facts right, world-clip breaking ties):
an upper bound for a relation-aware reward with the same N candidates. Prints a report and writes
report.txt, diagnosis.json and a few image grids to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# the pieces live in benchmarks/relations/; the pure helpers are re-exported here (the tests load this script)
from benchmarks.relations.measures import (  # noqa: E402, F401
    CLASSES,
    OBJECT_FACTS,
    STEP_BINS,
    T_BINS,
    bootstrap_ci,
    classify,
    fact_vector,
    layout,
    mean_or_nan,
    mean_pairwise_rms,
    more_components_kind,
    n_distinct,
    ranking_outcome,
    relation_prompts,
    scene_for,
    step_bin,
    swapped_caption,
    t_bin,
)
from benchmarks.relations.prior import measure_prior  # noqa: E402
from benchmarks.relations.renders import report_renders  # noqa: E402
from benchmarks.relations.report import report_runs, table  # noqa: E402

PARTS = ("prior", "renders", "runs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=Path, default=ROOT / "benchmarks" / "world_prompts.txt")
    ap.add_argument("--every", type=int, default=4, help="take every n-th relational prompt")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--k", type=int, default=8, help="number of relational prompts")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--methods", nargs="+", default=["sds", "reward-sds"])
    ap.add_argument("--oracle", action="store_true", help="also RewardSDS with the judge as its reward")
    ap.add_argument("--prior-samples", type=int, default=8, help="DDIM samples per prompt")
    ap.add_argument("--prior-cfgs", type=float, nargs="+", default=[4.0])
    ap.add_argument("--renders", type=int, default=8, help="clean renders per prompt for the reward check")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "relations_diagnosis")
    ap.add_argument("--prior", type=Path, default=None,
                    help="a world prior folder to diagnose instead of the shipped one (e.g. a fine-tuned prior)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                    help="prior: section 1; renders: world-clip on renders (3b); runs: the distillation runs (2-4)")
    ap.add_argument("--tag", default="", help="suffix of the report/diagnosis file names (report{tag}.txt)")
    ap.add_argument("--records", type=Path, default=None,
                    help="also write every step's measurements (JSON lines, one per run; ~1 MB) here")
    args = ap.parse_args()

    import torch

    from rewardsds import media
    from rewardsds.priors.diffusers_prior import DiffusersPrior
    from rewardsds.rewards.factory import load_reward
    from rewardsds.world.paths import prior_dir

    torch.set_num_threads(1)
    t_start = time.time()
    prompts = relation_prompts(args.prompts, args.every, args.k, args.offset)
    prior = DiffusersPrior.from_pretrained(str(args.prior or prior_dir()))
    clip = load_reward("world-clip")
    args.out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    say(f"relations diagnosis: {len(prompts)} prompts x seeds {args.seeds}, {args.steps} steps, "
        f"methods {args.methods}{' + oracle' if args.oracle else ''}")
    for p in prompts:
        say(f"  {p}   (swapped: {swapped_caption(p)})")

    # 1. prior
    t0 = time.time()
    pri, prior_rows, clean, cand, fin = {}, {}, None, {}, {}
    if "prior" in args.parts:
        pri = measure_prior(prior, prompts, args.prior_samples, args.prior_cfgs, seed=1234)
        say(f"\n== 1. prior: DDIM 50 steps, {args.prior_samples} samples per prompt ({time.time() - t0:.0f} s)")
    for name, f in pri.items():
        pp = f["per_prompt"]
        prior_rows[f"prior {name}"] = {
            "judge accuracy": bootstrap_ci([x["accuracy"] for x in pp]),
            "all facts": bootstrap_ci([x["all"] for x in pp]),
            "judge relation fact (lenient)": bootstrap_ci([x["relation_lenient"] for x in pp]),
            "relation right (distinct objects)": bootstrap_ci([x["relation"] for x in pp]),
            "both colours distinct": bootstrap_ci([x["distinct"] for x in pp]),
            "twin (one object twice)": bootstrap_ci([x["twin"] for x in pp]),
            "relation | distinct (pooled)": mean_or_nan(j.rel for j in f["judged"] if j.distinct),
            "objects+count right": bootstrap_ci([x["objects_ok"] for x in pp]),
            "relation | objects right (pooled)": mean_or_nan(j.rel for j in f["judged"] if j.objects_ok),
            "  samples with objects right": sum(x["n_objects_ok"] for x in pp)}
        media.save_png(args.out / f"prior_samples_{name.replace(' ', '')}.png",
                       media.grid(media.to_uint8(f["first"], 4), cols=8))
    if prior_rows:
        say(table(prior_rows, list(prior_rows)))
    if "renders" in args.parts:
        clean = report_renders(clip, prompts, args.renders, say)
    methods = list(args.methods) + (["oracle"] if args.oracle else [])
    runs: dict[str, list[dict]] = {m: [] for m in methods} if "runs" in args.parts else {}
    if runs:
        cand, fin = report_runs(prior, clip, prompts, methods, runs, pri, args, t_start, say)
    say(f"\ntotal {time.time() - t_start:.0f} s")

    strip = {m: [{k: v for k, v in r.items() if k not in ("records", "final_image")} for r in rs]
             for m, rs in runs.items()}
    data = {"args": {k: str(v) for k, v in vars(args).items()}, "prompts": prompts,
            "prior": {k: {"per_prompt": v["per_prompt"], "classes": v["classes"]} for k, v in pri.items()},
            "prior_summary": prior_rows, "clean_renders": clean, "candidates": cand, "final": fin, "runs": strip,
            "seconds": round(time.time() - t_start, 1)}
    media.save_json(args.out / f"diagnosis{args.tag}.json", json.loads(json.dumps(data, default=str)))
    media.save_text(args.out / f"report{args.tag}.txt", "\n".join(lines) + "\n")
    if args.records is not None:
        media.save_text(args.records, "".join(json.dumps({"prompt": r["prompt"], "method": m, "seed": r["seed"],
                                                          "records": r["records"]}) + "\n"
                                              for m, rs in runs.items() for r in rs))


if __name__ == "__main__":
    sys.exit(main())
