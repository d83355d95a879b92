"""The page's fields -> the CLI's typed configs, checked before anything loads or any folder is made.

A browser is not a shell: it may pick a prior and a reward only from fixed lists of names (no folder,
file, hub id or ``module:function``: those would let a page read files or run code on the server),
and its numbers arrive as floats, empty or not finite. Every mistake becomes a `UserError` whose text
the page shows; the library's own checks (`check_generate`, `check_edit`, `check3d`) run last, through
the same `checked` the CLI's preamble uses.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from ..commands.common import checked
from ..config import EditConfig, GenerateConfig
from ..errors import UserError
from ..losses import EDIT_METHODS, TEXT_METHODS
from ..weighting import Scheme

PRIORS = ("world", "sd21", "sd15")
"""named priors only: the embedded world, Stable Diffusion 2.1 base and 1.5 (downloaded by diffusers)"""
DEFAULT_REWARD = "default"
REWARDS = (DEFAULT_REWARD, "world-clip", "world-aesthetic", "0.5*world-clip+0.5*world-aesthetic", "clip",
           "pickscore", "imagereward", "hpsv2")
"""named rewards only; `default` is the prior family's (world-clip on the world, imagereward/clip on SD)"""
WEIGHTINGS: tuple[str, ...] = get_args(Scheme)
CHECKPOINT_EVERY = 10
"""app runs checkpoint every this many steps, so Stop (which ends a run at once) loses at most 9 steps"""
MAX_STEPS = 20000
MAX_PROMPT_CHARS = 1000

LABELS = {"n_noises": "N (candidates)", "denoise_steps": "S (denoise steps)", "reward_steps": "K (reward steps)",
          "steps": "steps", "seed": "seed", "source": "source prompt", "target": "target prompt"}


@dataclass(frozen=True)
class Settings:
    """What every run started from the page shares (from `AppConfig`)."""

    root: Path
    device: str = "auto"
    threads: int | None = None


def text(name: str, value: object) -> str:
    label = LABELS.get(name, name)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"the {label} is empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise UserError(f"the {label} is {len(value)} characters long; the app takes at most {MAX_PROMPT_CHARS}")
    return value.strip()


def choice(name: str, value: object, allowed: tuple[str, ...], hint: str = "") -> str:
    if value not in allowed:
        raise UserError(f"unknown {LABELS.get(name, name)} {value!r}; the app offers {', '.join(allowed)}{hint}")
    return str(value)


def number(name: str, value: object) -> float:
    """A finite number from a page field (gradio sends floats, None for an empty field)."""
    label = LABELS.get(name, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{label} is empty")
    if isinstance(value, bool):
        raise UserError(f"{label} must be a number, got {value!r}")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise UserError(f"{label} must be a finite number, got {value}")
    return x


def whole(name: str, value: object, lo: int, hi: int) -> int:
    x = number(name, value)
    label = LABELS.get(name, name)
    if x != int(x):
        raise UserError(f"{label} must be a whole number, got {value}")
    if not lo <= x <= hi:
        raise UserError(f"{label} must be in [{lo}, {hi}], got {int(x)}")
    return int(x)


def distill_options(values: dict, methods: tuple[str, ...]) -> dict:
    """The options every tab shares, checked, as config fields."""
    opts = {
        "prior": choice("prior", values.get("prior"), PRIORS,
                        " (folders and hub ids are for the command line: rewardsds generate --prior PATH)"),
        "reward": choice("reward", values.get("reward", DEFAULT_REWARD), REWARDS,
                         " (other specs are for the command line: rewardsds generate --reward SPEC)"),
        "n_noises": whole("n_noises", values.get("n_noises"), 1, 64),
        "denoise_steps": whole("denoise_steps", values.get("denoise_steps", 1), 1, 50),
        "weighting": choice("weighting", values.get("weighting", "top-bottom"), WEIGHTINGS),
        "steps": whole("steps", values.get("steps"), 1, MAX_STEPS),
        "seed": whole("seed", values.get("seed", 0), 0, 2**32 - 1),
    }
    if "method" in values:
        opts["method"] = choice("method", values["method"], methods)
    if "reward_steps" in values:
        k = number("reward_steps", values["reward_steps"])
        if k < 0:
            raise UserError(f"K (reward steps) must be a fraction in [0, 1] or a whole count, got {k:g}")
        opts["reward_steps"] = int(k) if k > 1 and k == int(k) else k
    if opts["reward"] == DEFAULT_REWARD:
        opts["reward"] = None
    return opts


def common(settings: Settings, out: Path) -> dict:
    """The fields the page does not show: where the run goes and how it runs."""
    return {"out": out, "device": settings.device, "threads": settings.threads, "progress": False,
            "checkpoint_every": CHECKPOINT_EVERY}


def generate_config(values: dict, settings: Settings, out: Path | None = None) -> GenerateConfig:
    """The `rewardsds generate` config of the Generate tab's `values` ({config field name: value})."""
    from ..run2d import check_generate

    prompt = text("prompt", values.get("prompt"))
    opts = distill_options(values, TEXT_METHODS)
    out = out or run_folder(settings.root, prompt)
    cfg = GenerateConfig(prompt=prompt, **opts, **common(settings, out))
    checked(check_generate, cfg)
    return cfg


def compare_configs(values: dict, settings: Settings) -> list[GenerateConfig]:
    """SDS and RewardSDS with the same prompt, seed and steps, in two run folders of one compare folder."""
    prompt = text("prompt", values.get("prompt"))
    folder = run_folder(settings.root, prompt, "compare")
    return [generate_config({**values, "method": m}, settings, folder / m)
            for m in ("sds", "reward-sds")]


def edit_config(values: dict, settings: Settings, out: Path | None = None) -> EditConfig:
    """The `rewardsds edit` config of the Edit tab (`image`: a file path)."""
    from ..run2d import check_edit

    image = values.get("image")
    if not image:
        raise UserError("upload an image to edit first")
    source, target = text("source", values.get("source")), text("target", values.get("target"))
    opts = distill_options(values, EDIT_METHODS)
    out = out or run_folder(settings.root, target, "edit")
    cfg = EditConfig(image=Path(image), source=source, target=target, **opts, **common(settings, out))
    checked(check_edit, cfg)
    return cfg


def gen3d_config(values: dict, settings: Settings, out: Path | None = None):
    """The `rewardsds gen3d` config of the 3D tab."""
    from ..config3d import Gen3DConfig, check3d

    prompt = text("prompt", values.get("prompt"))
    opts = distill_options(values, TEXT_METHODS)
    out = out or run_folder(settings.root, prompt, "3d")
    cfg = Gen3DConfig(prompt=prompt, **opts, **common(settings, out))
    checked(check3d, cfg)
    return cfg


def slug(textual: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", textual.lower())
    return "-".join(words)[:limit].strip("-") or "run"


def run_folder(root: Path, prompt: str, kind: str = "") -> Path:
    """A new folder name under `root`: <yyyymmdd-hhmmss>-[kind-]<prompt slug>, never one that exists."""
    stem = "-".join(p for p in (time.strftime("%Y%m%d-%H%M%S"), kind, slug(prompt)) if p)
    path, i = Path(root) / stem, 2
    while path.exists():
        path, i = Path(root) / f"{stem}-{i}", i + 1
    return path


def keep_upload(src: str | Path, root: Path) -> Path:
    """Copy an uploaded image (a file in gradio's temporary cache) into the app's root, so that the
    run's config.json names a file that stays (and --resume finds it)."""
    src = Path(src)
    if not src.is_file():
        raise UserError("the uploaded image is gone; upload it again")
    folder = Path(root) / "uploads"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(src.stem, 30)}{src.suffix.lower()[:6]}"
        shutil.copyfile(src, dest)
    except OSError as e:
        raise UserError(f"cannot keep the uploaded image in {str(folder)!r}: {e.strerror or e}") from e
    return dest
