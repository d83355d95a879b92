"""Full-size benchmark (not a test): seconds per step and peak memory of the 2D engine on Stable Diffusion
2.1-base shapes, built from configuration with random weights (nothing is downloaded).

It builds SD-2.1-base's U-Net (865M parameters), VAE, OpenCLIP-H text tower (transformers `CLIPTextModel`),
a CLIP byte-level tokenizer (77 tokens, no merges) and the PNDM scheduler config, saves them in diffusers'
layout (model_index.json ``StableDiffusionPipeline``), and CLIP ViT-L/14 plus a linear aesthetic head; then
loads them through the loaders users call (`DiffusersPrior.from_pretrained`, `load_reward("clip@DIR")`,
`AestheticReward.from_pretrained`) and prints, per method, seconds per step, U-Net calls and samples per
step and peak memory (RSS from /proc's VmHWM, reset before each measurement; CUDA max allocated with
--device cuda):

* SDS; RewardSDS default (N=4, S=1); paper-small (N=2, S=1, K=10%); paper-full (N=10, S=15, K=all):
  measured with --full-steps, otherwise EXTRAPOLATED as U-Net samples x measured seconds per sample (+
  decodes and reward images x their measured cost); RewardVSD with a rank-4 LoRA particle model;
* the official code's call pattern on the same models (2D: preview on the fixed S-step grid starting at the
  grid step <= t, then a separate U-Net pass at t on the kept candidates; 3D: per candidate, preview from t
  and a repeated pass at t), and our time over theirs at identical N, S, K;
* the targets (met / NOT met), and the wall time of ``rewardsds generate ... --method sds`` on the saved
  folder.

    .venv/bin/python scripts/bench_scale.py --threads 1 --vsd-n 2 --json benchmarks/results/bench_scale/cpu.json
    .venv/bin/python scripts/bench_scale.py --device cuda --full-steps --steps 3     # on a GPU
    .venv/bin/python scripts/bench_scale.py --tiny                                  # seconds (smoke test)

Each phase (build, engine, vsd, generate) runs in its own process unless --no-isolate (--tiny implies it),
so the weights one phase loads never count in another's peak. On a CPU the verdicts, ratios and
extrapolations use the process's CPU seconds (with one torch thread: the work done, which other jobs on a
shared machine hardly move); wall seconds are printed beside them. ``--report-from FILE.json`` prints the
report of an earlier ``--json`` again without measuring.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_scale_lib/ sits beside this script
from bench_scale_lib.build import (  # noqa: E402, F401  (the configurations: tests, bench_preview_decoder.py)
    CLIP_L14,
    SD21_TEXT,
    SD21_UNET,
    SD21_VAE,
    build_models,
    paths,
)
from bench_scale_lib.common import PARTS, SETTINGS  # noqa: E402
from bench_scale_lib.environment import _environment, _loadavg, bf16_slowdown  # noqa: E402
from bench_scale_lib.isolation import build_phase, run_phase  # noqa: E402
from bench_scale_lib.methods import expected_calls  # noqa: E402, F401  (tests call it)
from bench_scale_lib.phases import PHASES  # noqa: E402
from bench_scale_lib.report import report  # noqa: E402


def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                    help="the prior's weights (DiffusersPrior.from_pretrained's dtype); auto = fp32 on CPU, fp16 on "
                         "CUDA. Rewards load in fp32 (load_reward has no dtype) and the VSD copy is fp32")
    ap.add_argument("--force-bf16", action="store_true",
                    help="run --dtype bf16 on a CPU even when bf16 is much slower than fp32 there")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--steps", type=int, default=1, help="timed optimisation steps per method (default 1)")
    ap.add_argument("--full-steps", action="store_true",
                    help="measure paper-full (N=10, S=15) steps instead of extrapolating them (hours on a CPU)")
    ap.add_argument("--compare", nargs="*", default=["default", "paper-small"], choices=list(SETTINGS),
                    help="settings measured against the official 2D pattern (paper-full only with --full-steps)")
    ap.add_argument("--compare-3d", nargs="*", default=["paper-small"], choices=list(SETTINGS),
                    help="settings measured against the official 3D pattern")
    ap.add_argument("--vsd-n", type=int, default=4, help="N of the RewardVSD measurement (default 4)")
    ap.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts not to measure")
    ap.add_argument("--tiny", action="store_true", help="toy model sizes (the smoke test; implies --no-isolate)")
    ap.add_argument("--folder", type=Path, default=None,
                    help="where the models are built (reused when already built there; default: a temporary "
                         "folder, removed at the end)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="each phase in its own process (default: on, off with --tiny)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    ap.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                    help="print the report of an earlier run's --json file again, measuring nothing")
    ap.add_argument("--phase", choices=["build", *PHASES], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.isolate is None:
        args.isolate = not args.tiny
    if args.steps < 1 or args.threads < 1 or args.vsd_n < 1:
        ap.error("--steps, --threads and --vsd-n must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.phase == "build":
        import torch

        torch.set_num_threads(args.threads)
        build_models(args.folder, args.tiny)
        return 0
    if args.phase:
        result = PHASES[args.phase](args, paths(args.folder))
        args.phase_out.write_text(json.dumps(result))
        return 0
    if args.report_from:  # print the report of an earlier run's --json again (no measuring)
        res = json.loads(args.report_from.read_text())
        for k, v in res.get("args", {}).items():
            setattr(args, k, v)
        res["rerendered"] = (f"report printed again from {args.report_from} by the current "
                             "scripts/bench_scale.py --report-from (figures as measured)")
        print("\n".join(report(res, args)))
        return 0

    child_argv = [a for a in argv if a not in ("--isolate",)]
    tmp = None
    if args.folder is None:
        tmp = tempfile.mkdtemp(prefix="bench_scale_models-")
        args.folder = Path(tmp)
    args.folder.mkdir(parents=True, exist_ok=True)
    res: dict = {"environment": _environment(argv), "notes": [],
                 "args": {k: getattr(args, k) for k in ("device", "threads", "tiny", "full_steps")}}
    try:
        if args.dtype == "bf16" and not args.device.startswith("cuda"):
            slow = bf16_slowdown()
            res["bf16_note"] = f"bf16 matmul is {slow:.0f}x slower than fp32 on this CPU"
            if slow > 4 and not args.force_bf16:
                print(f"bench_scale: {res['bf16_note']} (no bf16 hardware): not measured; pass --force-bf16 to run "
                      "anyway", file=sys.stderr)
                return 3
        print("building models ...", flush=True)
        res["build"] = build_phase(args, child_argv)
        p = paths(args.folder)
        print(f"engine ({'isolated' if args.isolate else 'in process'}) ...", flush=True)
        res["engine"] = run_phase("engine", args, p, child_argv)
        if "vsd" not in args.skip:
            print("reward-vsd ...", flush=True)
            res["vsd"] = run_phase("vsd", args, p, child_argv)
        if "generate" not in args.skip:
            print("rewardsds generate ...", flush=True)
            res["generate"] = run_phase("generate", args, p, child_argv)
        res["environment"]["loadavg_after"] = _loadavg()
        lines = report(res, args)
        print("\n".join(lines))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1, default=str))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [k for k in ("engine", "vsd", "generate") if "error" in res.get(k, {})]
    gen = res.get("generate", {}).get("generate")
    return 1 if failed or (gen and gen["returncode"]) else 0


if __name__ == "__main__":
    sys.exit(main())
