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
  gen3d PROMPT             text-to-3D into a radiance field or Gaussian splats (turntable video + mesh)
  world-eval               quality figures of the embedded world's shipped models
  sweep PROMPTS_FILE       every prompt x --methods x --seeds in parallel (local processes or --ray); resumable
  eval SWEEP_DIR           score a sweep's images (--metrics judge,world-clip,...): means, CIs, paired diffs
  report SWEEP_DIR         one self-contained HTML page: tables, gallery, curves, cost vs quality
  app                      a local web page that runs generate/compare/edit/gen3d live (needs rewardsds[app])

presets (generate/edit/gen3d/sweep): paper-full (N=10, S=15, K=all), paper-small (N=2, S=1, K=10%),
  sds (plain SDS), fast (N=2, 100 steps)

`rewardsds COMMAND --help` lists every option of a command."""


def _generate():
    from .config import GenerateConfig
    from .run2d import run_generate

    return GenerateConfig, run_generate


def _edit():
    from .config import EditConfig
    from .run2d import run_edit

    return EditConfig, run_edit


def _gen3d():
    from .config3d import Gen3DConfig
    from .gen3d import run_gen3d

    return Gen3DConfig, run_gen3d


def _world_eval():
    from .world.evaluate import WorldEvalConfig, run_world_eval

    return WorldEvalConfig, run_world_eval


def _sweep():
    from .sweep.config import SweepConfig
    from .sweep.runner import run_sweep

    return SweepConfig, run_sweep


def _eval():
    from .eval.config import EvalConfig
    from .eval.metrics import run_eval

    return EvalConfig, run_eval


def _report():
    from .report.config import ReportConfig
    from .report.html import run_report

    return ReportConfig, run_report


def _app():
    from .app import AppConfig, run_app

    return AppConfig, run_app


# Each entry imports only its own command's modules, so `rewardsds X --help` loads X alone.
COMMANDS = {"generate": _generate, "edit": _edit, "gen3d": _gen3d, "world-eval": _world_eval, "sweep": _sweep,
            "eval": _eval, "report": _report, "app": _app}
DISTILL_COMMANDS = ("generate", "edit", "gen3d")


def _commands():
    """(config class, runner) per subcommand (imports every command: for tests and tools)."""
    return {name: load() for name, load in COMMANDS.items()}


def _pop_preset(args: list[str]) -> tuple[str | None, list[str]]:
    for i, a in enumerate(args):
        if a == "--preset" and i + 1 < len(args):
            return args[i + 1], args[:i] + args[i + 2:]
        if a.startswith("--preset="):
            return a.split("=", 1)[1], args[:i] + args[i + 1:]
    return None, args


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rewardsds")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] in ("--version", "-V"):
        print(f"rewardsds {_version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"rewardsds: unknown command {name!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    from .threads import configure_threads, threads_from_argv

    try:  # OpenMP settings must precede torch's import (below), so --threads is read from argv here
        configure_threads(threads_from_argv(rest))
    except ValueError as e:
        print(f"rewardsds {name}: error: {e}", file=sys.stderr)
        return 2

    import tyro

    from .errors import UserError

    config_cls, runner = COMMANDS[name]()
    preset, rest = _pop_preset(rest)
    default = None
    if preset is not None:
        from .config import PRESETS

        if preset not in PRESETS:
            print(f"rewardsds {name}: error: unknown preset {preset!r}; expected one of {', '.join(PRESETS)}",
                  file=sys.stderr)
            return 2
        try:
            default = PRESETS[preset].apply(config_cls, preset)
        except ValueError as e:
            print(f"rewardsds {name}: error: {e}", file=sys.stderr)
            return 2
    cfg = _parse(tyro, config_cls, rest, default, name)
    if isinstance(cfg, int):
        return cfg
    try:
        result = runner(cfg)
    except UserError as e:
        print(f"rewardsds {name}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"rewardsds {name}: interrupted; {_resume_hint(e, cfg)}", file=sys.stderr)
        return 130
    if name in DISTILL_COMMANDS and isinstance(result, dict):
        from .commands.common import describe

        print(describe(name, result))
    elif isinstance(result, dict) and result.get("out"):
        print(f"wrote {result['out']}")
    if isinstance(result, dict) and result.get("failed"):
        # the sweep printed which runs failed; scripts chaining sweep && eval must see it too
        print(f"rewardsds {name}: {result['failed']} of {result['runs']} runs failed (rerun to retry them)",
              file=sys.stderr)
        return 1
    return 0


def _parse(tyro, config_cls, args: list[str], default, name: str):
    """tyro's parse; its errors (drawn as a box over several lines) become one line on stderr, and
    --help goes to stdout as tyro draws it. Returns the config, or an exit code."""
    import contextlib
    import io

    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
            return tyro.cli(config_cls, args=args, default=default, prog=f"rewardsds {name}",
                            description=config_cls.__doc__)
    except SystemExit as e:
        code = int(e.code or 0)
        if code == 0:
            print(buf.getvalue(), end="")
        else:
            print(f"rewardsds {name}: error: {_one_line(buf.getvalue())}", file=sys.stderr)
        return code


def _one_line(text: str) -> str:
    """The words of a boxed tyro message, without the box and the help pointer."""
    keep = []
    for raw in text.splitlines():
        line = raw.strip().strip("│╭╮╰╯─").strip()
        if not line or line.startswith("For full helptext") or set(line) <= set("─ "):
            continue
        if line.startswith("rewardsds ") and line.endswith("--help"):
            continue
        keep.append(line)
    return " ".join(keep) or "invalid arguments (see --help)"


def _resume_hint(err: KeyboardInterrupt, cfg) -> str:
    if not hasattr(cfg, "resume"):
        return "rerun the same command to continue where it stopped"
    ckpt = getattr(err, "checkpoint", None)
    if ckpt is None:
        return "no checkpoint was written yet: rerun the command (with --overwrite) to start again"
    return f"checkpoint after step {err.step} in {ckpt}; rerun with --resume to continue"


if __name__ == "__main__":
    sys.exit(main())
