"""`rewardsds` command line: one subcommand per job, each generated from its typed config by tyro.

    rewardsds generate "a red circle to the left of a blue square"
    rewardsds generate "a red circle" --preset paper-small --method reward-sds --reward world-aesthetic
    rewardsds edit photo.png --source "a red circle" --target "a blue circle"
    rewardsds world-eval
    rewardsds sweep benchmarks/world_prompts.txt --methods sds reward-sds --seeds 0 1 2 --out out/t1
    rewardsds eval out/t1 --metrics judge,world-clip,world-aesthetic && rewardsds report out/t1

The only place that picks paths and loads weights. Bad input ends with one line on stderr and exit
code 2; nothing here prints a traceback for a user mistake.
"""

from __future__ import annotations

import sys

USAGE = """usage: rewardsds COMMAND [--preset NAME] [OPTIONS]

Reward-aligned score distillation (RewardSDS, RewardVSD, RewardDDS, SDS-Bridge).

commands:
  generate PROMPT          text-to-image distillation (default: RewardSDS on the embedded world, CPU)
  edit IMAGE               2D editing with --source/--target prompts (default: RewardDDS)
  gen3d PROMPT             text-to-3D into a radiance field (turntable video + mesh)
  world-eval               quality figures of the embedded world's shipped models
  sweep PROMPTS_FILE       every prompt x --methods x --seeds in parallel (local processes or --ray); resumable
  eval SWEEP_DIR           score a sweep's images (--metrics judge,world-clip,...): means, CIs, paired diffs
  report SWEEP_DIR         one self-contained HTML page: tables, gallery, curves, cost vs quality

presets (generate/edit/gen3d/sweep): paper-full (N=10, S=15, K=all), paper-small (N=2, S=1, K=10%),
  sds (plain SDS), fast (N=2, 100 steps)

`rewardsds COMMAND --help` lists every option of a command."""


def _commands():
    """(config class, runner) per subcommand; imported lazily so `--help` stays fast."""
    from . import run2d
    from .config import EditConfig, GenerateConfig

    cmds = {"generate": (GenerateConfig, run2d.run_generate), "edit": (EditConfig, run2d.run_edit)}
    try:
        from .gen3d import Gen3DConfig, run_gen3d

        cmds["gen3d"] = (Gen3DConfig, run_gen3d)
    except ImportError:
        pass
    from .world.evaluate import WorldEvalConfig, run_world_eval

    cmds["world-eval"] = (WorldEvalConfig, run_world_eval)
    from .eval.config import EvalConfig
    from .eval.metrics import run_eval
    from .report.config import ReportConfig
    from .report.html import run_report
    from .sweep.config import SweepConfig
    from .sweep.runner import run_sweep

    cmds["sweep"] = (SweepConfig, run_sweep)
    cmds["eval"] = (EvalConfig, run_eval)
    cmds["report"] = (ReportConfig, run_report)
    return cmds


def _pop_preset(args: list[str]) -> tuple[str | None, list[str]]:
    for i, a in enumerate(args):
        if a == "--preset" and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2:]
        if a.startswith("--preset="):
            return a.split("=", 1)[1], args[:i] + args[i + 1:]
    return None, args


def main(argv: list[str] | None = None) -> int:
    import dataclasses

    import tyro

    from .errors import UserError

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    name, rest = args[0], args[1:]
    cmds = _commands()
    if name not in cmds:
        print(f"rewardsds: unknown command {name!r}; expected one of {', '.join(cmds)}", file=sys.stderr)
        return 2
    config_cls, runner = cmds[name]
    preset, rest = _pop_preset(rest)
    default = None
    if preset is not None:
        from .config import PRESETS

        if preset not in PRESETS:
            print(f"rewardsds: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}", file=sys.stderr)
            return 2
        fields = {f.name for f in dataclasses.fields(config_cls)}
        default = config_cls(**{k: v for k, v in PRESETS[preset].items() if k in fields})
    try:
        cfg = tyro.cli(config_cls, args=rest, default=default, prog=f"rewardsds {name}",
                       description=config_cls.__doc__)
    except SystemExit as e:  # tyro printed its own message (bad flag, wrong choice) or --help
        return int(e.code or 0)
    try:
        result = runner(cfg)
    except UserError as e:
        print(f"rewardsds {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        how = ("rerun with --resume to continue from the last checkpoint" if hasattr(cfg, "resume")
               else "rerun the same command to continue where it stopped")
        print(f"rewardsds {name}: interrupted; {how}", file=sys.stderr)
        return 130
    if isinstance(result, dict) and result.get("out"):
        print(f"wrote {result['out']}")
    if isinstance(result, dict) and result.get("failed"):
        # the sweep printed which runs failed; scripts chaining sweep && eval must see it too
        print(f"rewardsds {name}: {result['failed']} of {result['runs']} runs failed (rerun to retry them)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
