"""The one preamble of every distillation command (generate, edit, gen3d, and the app):

    check options -> device -> run folder -> seed -> prior -> prompts -> reward -> config.json

`prepare` is the only place where a configuration error (a ValueError from any typed config or
check) becomes a one-line `UserError`; the library below it raises plain ValueErrors.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import media
from ..checkpoints import CHECKPOINT_NAME
from ..errors import UserError
from ..losses import GuidanceConfig

LEGACY_CHECKPOINT = "checkpoint.pt"  # the pickle format of earlier versions: never loaded


@dataclass
class Session:
    """Everything a command's run needs, built once by `prepare`."""

    cfg: Any
    guidance: GuidanceConfig
    loop: Any  # LoopConfig
    device: torch.device
    out: Path
    generator: torch.Generator
    prior: Any
    prior_path: str
    reward: Any
    run_id: dict
    preview_decoder: Any = None  # --preview-decoder, loaded (guidance kwarg) or None

    def guidance_kwargs(self) -> dict:
        """What `losses.build_guidance` takes from the session besides the config, prior and reward."""
        return {"generator_seed": self.cfg.seed, "preview_decoder": self.preview_decoder}


def checked(fn: Callable, *args):
    """fn(*args), with ValueError (bad options) as a UserError."""
    try:
        return fn(*args)
    except ValueError as e:
        raise UserError(str(e)) from e


def prepare(cfg, check: Callable[[Any], tuple[Any, GuidanceConfig, Any]], models=None, multiview: bool = False
            ) -> Session:
    """Check `cfg` with `check` (-> resolved cfg, GuidanceConfig, LoopConfig), then set up everything
    in the order that fails cheapest first: the prior and reward load only after every option is
    known good, and the run folder is created only once the prompts and models are. `models` (the
    app's `ModelCache`: `load_prior(spec, device)` -> (prior, path), `load_reward(spec, device)`) loads
    them instead of `load_prior` / `load_reward_model`, so a long-lived caller loads each model once.
    `multiview`: the command can feed a multi-view prior its cameras (gen3d); the others refuse one."""
    from ..config import run_id
    from ..defaults import reward_notes
    from ..threads import configure_threads

    requested_reward = cfg.reward  # None: the prior family's default, which `check` resolves
    cfg, gcfg, lcfg = checked(check, cfg)
    threads = checked(configure_threads, cfg.threads)
    device = pick_device(cfg.device)
    check_out(cfg.out, cfg.resume, cfg.overwrite)
    generator = torch.Generator().manual_seed(cfg.seed)  # before anything random
    torch.manual_seed(cfg.seed)
    prior, prior_path = (models.load_prior if models is not None else load_prior)(cfg.prior, device)
    if prior.views_per_sample > 1 and not multiview:
        raise UserError(f"--prior {cfg.prior} is a multi-view prior ({prior.views_per_sample} views of one object "
                        "per sample, each with its camera): it distils 3D objects; use `rewardsds gen3d`")
    for what, text in cfg.prompt_texts().items():
        check_prompt(prior, text, what, allow_unknown=cfg.allow_unknown_words)
    reward = None
    if gcfg.uses_reward:
        for line in reward_notes(cfg.prior, requested_reward):  # the fallback taken, or a world reward on SD
            print(line, file=sys.stderr)
        reward = (models.load_reward if models is not None else load_reward_model)(cfg.reward, device)
    decoder = None
    if gcfg.uses_reward and getattr(cfg, "preview_decoder", None):
        from ..priors.preview_decoder import load_preview_decoder

        decoder = checked(load_preview_decoder, cfg.preview_decoder, prior)
    out = prepare_out(cfg.out, cfg.resume, cfg.overwrite)  # only now: a refused run leaves no folder
    media.save_json(out / "config.json", {**dataclasses.asdict(cfg), "resolved_prior_path": prior_path,
                                          "threads_used": threads})
    return Session(cfg, gcfg, lcfg, device, out, generator, prior, prior_path, reward, run_id(cfg), decoder)


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise UserError(f"unknown device {spec!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {spec} asked for CUDA, but no CUDA device is available here (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for Apple's GPU, but it is not available here (use --device cpu)")
    return dev


def check_out(path: Path, resume: bool, overwrite: bool = False) -> None:
    """Refuse a run folder that cannot be used, before anything loads or is written: a file, or a
    folder holding a run already unless --resume (continue it) or --overwrite (start again)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {str(path)!r} is a file, not a folder")
    if resume and overwrite:
        raise UserError("--resume continues the run in --out and --overwrite replaces it: pass one of them")
    finished = (path / "summary.json").exists()
    started = (path / CHECKPOINT_NAME).exists() or (path / LEGACY_CHECKPOINT).exists()
    if resume and (path / LEGACY_CHECKPOINT).exists() and not (path / CHECKPOINT_NAME).exists():
        raise UserError(f"{str(path / LEGACY_CHECKPOINT)!r} is a pickle checkpoint of an earlier version; it is not "
                        "loaded because a pickle can run code. Start again with --overwrite")
    if (finished or started) and not (resume or overwrite):
        what = "a finished run (summary.json)" if finished else "an unfinished run (a checkpoint)"
        raise UserError(f"{str(path)!r} holds {what}; pass --resume to continue it, --overwrite to replace it, "
                        "or choose another --out")


def prepare_out(path: Path, resume: bool, overwrite: bool = False) -> Path:
    """`check_out`, then create the folder, prove it writable, and clear what --overwrite replaces."""
    check_out(path, resume, overwrite)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to the output folder {str(path)!r}: {e.strerror or e}") from e
    if not resume:
        (path / "summary.json").unlink(missing_ok=True)  # the old result no longer describes this folder
        for name in (CHECKPOINT_NAME, LEGACY_CHECKPOINT, "log.jsonl"):
            (path / name).unlink(missing_ok=True)
    return path


def load_prior(spec: str, device: torch.device):
    """(prior, the path or hub id it was loaded from). A world alias whose weights are not trained yet
    ('world3d') is one error saying how to train them, not a loader's "no model_index.json"."""
    from ..config import PRIOR_ALIASES
    from ..priors.diffusers_prior import DiffusersPrior, PriorLoadError
    from ..priors.multiview import MultiViewPrior, folder_views
    from ..worlds import WORLD_PRIORS

    world = WORLD_PRIORS.get(spec)
    if world is not None:
        folder = world.prior_dir()
        if world.train_hint is not None and not (folder / "model_index.json").exists():
            raise UserError(f"--prior {spec}: its weights are not trained yet ({str(folder)!r} has no "
                            f"model_index.json); {world.train_hint}")
        path = str(folder)
    else:
        path = PRIOR_ALIASES.get(spec, spec)
    loader = MultiViewPrior if folder_views(path) > 1 else DiffusersPrior  # model_index.json's family decides
    try:
        return loader.from_pretrained(path, device=device), path
    except PriorLoadError as e:
        raise UserError(str(e)) from e


def load_reward_model(spec: str, device: torch.device):
    from ..rewards.factory import load_reward

    try:
        return load_reward(spec, device=device)
    except (ValueError, ImportError, OSError) as e:
        raise UserError(f"cannot load reward {spec!r}: {e}") from e


def check_prompt(prior, prompt: str, what: str = "prompt", allow_unknown: bool = False) -> None:
    """Empty, too long, or (on a world prior) made of words the world does not know: one clear error."""
    if not prompt or not prompt.strip():
        raise UserError(f"the {what} is empty")
    tok = getattr(prior, "tokenizer", None)
    if tok is None:
        return
    n = len(tok(prompt).input_ids)
    if n > tok.model_max_length:
        raise UserError(f"the {what} is {n} tokens long; this prior reads at most {tok.model_max_length}")
    from ..worlds import world_of_family

    world = world_of_family(getattr(prior, "family", ""))
    if world is not None and not allow_unknown:
        unknown = unknown_words(tok, prompt)  # the prior's own word-level tokenizer: what it actually reads
        if unknown:
            vocab = world.words() if world.words else sorted(w for w in tok.get_vocab() if w.isalpha())
            raise UserError(f"the {what} has words the {world.name} does not know: {', '.join(unknown)}. It knows: "
                            f"{' '.join(vocab)} (pass --allow-unknown-words to run anyway)")


def unknown_words(tokenizer, text: str) -> list[str]:
    """The words of `text` that a word-level tokenizer maps to its unknown token, in order."""
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    unk = tokenizer.unk_token_id
    words = [text[a:b] for i, (a, b) in zip(enc.input_ids, enc.offset_mapping) if i == unk]
    return list(dict.fromkeys(words))


def describe(name: str, summary: dict) -> str:
    """What a person reads when a command finishes: where the outputs are, and the judge's verdict."""
    lines = [f"rewardsds {name}: done in {summary.get('wall_seconds', summary.get('seconds', 0)):.1f} s "
             f"({summary.get('steps')} steps); outputs in {summary.get('out')}/"]
    files = summary.get("files") or {}
    if files:
        lines.append("  " + ", ".join(f"{v}" for v in files.values()))
    video = summary.get("video")
    if video:
        kind = "MP4" if str(video).endswith(".mp4") else "GIF (install imageio-ffmpeg for MP4)"
        lines.append(f"  video: {video} ({kind})")
    start = summary.get("init_samples")
    if start:  # the sampled start: its own time (not in "done in"), and what the judge read in it
        how = "the reward's pick" if start.get("picked_by") == "reward" else "the first"
        took = f", {start['seconds']:.1f} s" if start.get("seconds") is not None else ""
        read = [f"{sum(bool(v) for v in j['facts'].values())}/{len(j['facts'])}" for j in start.get("judge") or []]
        judged = f"; judge {', '.join(read)} facts right" if read else ""
        lines.append(f"  start: init.png, {how} of {start['n']} prior samples{took}{judged}")
    for i, verdict in enumerate(summary.get("judge") or []):
        facts = verdict.get("facts", {})
        right = sum(bool(v) for v in facts.values())
        detail = ", ".join(f"{k} {'ok' if v else 'WRONG'}" for k, v in facts.items())
        tag = f" image {i}" if len(summary["judge"]) > 1 else ""
        lines.append(f"  judge{tag}: {right}/{len(facts)} facts right ({detail})")
    if summary.get("judge3d"):
        v = summary["judge3d"]
        lines.append(f"  judge3d: accuracy {v.get('accuracy')}")
    return "\n".join(lines)
