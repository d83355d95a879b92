"""Typed configs of the 2D commands (the CLI is generated from these by tyro), named presets, what
identifies a run, and the one check of every option.

Defaults target the embedded world on CPU. Fields left at None take the prior family's default
(`defaults.FamilyDefaults`). `resolve` fills them, so the resolved config (config.json, sweep hashes)
names the values actually used.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from .defaults import default_reward, family_defaults, prior_defaults
from .loop import LoopConfig
from .losses import BRIDGE_SRC, BRIDGE_TGT, GuidanceConfig, Method, TextMethod, TimeWeighting
from .sweep.checks import check_float, check_int, check_seed
from .weighting import Scheme, Weighting

PRIOR_ALIASES = {
    "sd21": "stabilityai/stable-diffusion-2-1-base",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}
DEVICE_TYPES = ("cpu", "cuda", "mps")


@dataclass
class DistillOptions:
    """The distillation options shared by single runs and sweeps."""

    prior: str = "world"
    """'world' (embedded, offline), 'world3d' (the embedded 3D world, once trained), 'world3d-mv' (its
    multi-view prior, MVDream's analogue, gen3d only, once trained), 'sd21', 'sd15', a local diffusers folder or
    a hub id"""
    reward: str | None = None
    """world-clip, world-aesthetic, world3d-clip, clip, aesthetic@HEAD, imagereward, pickscore, hpsv2, a mix
    such as '0.5*world-clip+0.5*world-aesthetic', or module.path:function (default: the prior's: world-clip
    for the world, world3d-clip for the 3D world; imagereward for Stable Diffusion, or clip when ImageReward
    is not installed)"""
    n_noises: int = 4
    """N: noise candidates per reward step"""
    denoise_steps: int = 1
    """S: DDIM steps of each candidate's preview (1 = exact one-step x0 prediction)"""
    preview_schedule: Literal["from-t", "global"] = "from-t"
    """S-step preview grid: from-t = S steps over [0, t] (S calls); global = the paper's S-step grid over
    [0, T], from t down (about t/T*S + 1 calls)"""
    reward_steps: float = 1.0
    """K: steps that use rewards: a fraction (0, 1] of the first steps, or a count > 1"""
    weighting: Scheme = "top-bottom"
    """how candidate rewards become weights (paper Table 5; top-bottom: +0.9 shared by the top-2, -0.1 by the
    bottom-2)"""
    softmax_temperature: float = 1.0
    """temperature of --weighting softmax"""
    softmax_normalize: Literal["none", "zscore", "rank"] = "zscore"
    """what --weighting softmax exponentiates: the rewards' z-scores over the N candidates (scale-free: the
    same weights for any reward's units), ranks in [0, 1], or raw rewards (none: on CLIPScore x 100 at
    temperature 1 practically winner-takes-all)"""
    weight_scale: Literal["each", "group"] = "group"
    """top-bottom: +0.9 / -0.1 split over the top / bottom 2 as the official code does (group: +0.45 / -0.05
    each, sum 0.8, close to a plain SDS step's 1), or on each of them (each: sum 1.6; with K < all steps it
    lost 11.5 judge points at K = 50% on the world)"""
    steps: int | None = None
    """optimisation steps (default: the prior's)"""
    cfg: float | None = None
    """guidance scale of the distillation gradient (default: the prior's, per method)"""
    preview_cfg: float = 7.5
    """guidance scale of the candidates' S-step preview"""
    preview_decoder: str | None = None
    """latent priors: a diffusers AutoencoderTiny folder or hub id (madebyollin/taesd for SD 1.x/2.x) that
    decodes the candidates' previews for the reward instead of the full VAE (the final image still uses the
    VAE); at SD scale the VAE decodes are most of a RewardSDS step"""
    lr: float | None = None
    """Adam learning rate (default: the prior's)"""
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:1 ..."""
    negative_prompt: str = ""
    """the unconditional half of classifier-free guidance uses this text"""
    t_min: float | None = None
    """lowest timestep, as a fraction of T (default: 0.02; DDS on Stable Diffusion 0.05, as its reference)"""
    t_max: float | None = None
    """highest timestep, as a fraction of T (default: 0.98; DDS on Stable Diffusion 0.95)"""
    time_weighting: TimeWeighting | None = None
    """w(t) of the gradient: sds = 1 - alpha_bar_t (DreamFusion), constant = 1 (the DDS reference); default:
    the prior's, per method (constant for DDS on Stable Diffusion, sds otherwise)"""
    vsd_lora_rank: int | None = None
    """VSD particle model: 0 = a trainable copy of the prior's U-Net, > 0 = LoRA of this rank on its
    attention layers (needs rewardsds[lora]); default: the prior's (world 0, Stable Diffusion 4)"""
    vsd_lr: float | None = None
    """learning rate (AdamW, no weight decay) of the VSD particle model (default: the prior's, 3e-4)"""


@dataclass
class CommonConfig(DistillOptions):
    method: Method = "reward-sds"
    """distillation method (reward-* weight N candidates by their rewards)"""
    seed: int = 0
    """seeds everything random (initial image, noises, timesteps)"""
    checkpoint_every: int | None = None
    """a checkpoint every this many steps (default: a tenth of the run, at most 100; also at the end and
    on Ctrl-C)"""
    resume: bool = False
    """continue the run in --out from its checkpoint (refused if the checkpoint is another run's)"""
    overwrite: bool = False
    """replace a finished or unfinished run already in --out (otherwise refused)"""
    threads: int | Literal["auto"] | None = None
    """CPU threads for torch: N, or auto (default: the cores idle at start; waiting threads sleep)"""
    allow_unknown_words: bool = False
    """embedded world: run even when the prompt has words outside the world's vocabulary"""
    progress: bool = True
    """show a progress bar"""

    def prompt_texts(self) -> dict[str, str]:
        """The prompts this command reads, by how an error should name them."""
        raise NotImplementedError


@dataclass
class SampleInit:
    """Text-to-image's start from prior samples (generate and sweep)."""

    init_samples: int | None = None
    """start from the best of this many plain prior samples instead of --init (reward-* methods pick by
    their reward, the others take the first sample): the layout is settled early in distillation, so it
    is chosen before it; 0 = off. Default: the prior's (world: 4 for sds and reward-sds unless --init is
    given; otherwise 0)"""
    init_sample_cfg: float = 4.0
    """guidance scale of the --init-samples DDIM samples (low: the prior's most varied, faithful draws)"""
    init_sample_steps: int = 20
    """DDIM steps of each --init-samples sample"""


@dataclass
class GenerateConfig(CommonConfig, SampleInit):
    """Text-to-image: distil an image of PROMPT from the prior."""

    prompt: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PROMPT")] = tyro.MISSING
    """what the image should show"""
    method: TextMethod = "reward-sds"
    """distillation method (reward-* weight N candidates by their rewards)"""
    out: Path = Path("out/generate")
    """run folder: image.png, video, log.jsonl, config.json, checkpoint, summary.json"""
    init: Literal["noise", "colour", "image"] | None = None
    """initial image: Gaussian noise in model space, the world backdrop colour, or --init-image (default:
    the prior's sampled start where it has one, see --init-samples; otherwise colour)"""
    init_image: Path | None = None
    """image file to start from (with --init image)"""
    batch: int = 1
    """images optimised side by side (each with its own noises)"""

    def prompt_texts(self) -> dict[str, str]:
        return {"prompt": self.prompt}


@dataclass
class EditConfig(CommonConfig):
    """2D editing: change IMAGE from --source to --target (DDS / RewardDDS by default)."""

    image: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="IMAGE")] = tyro.MISSING
    """the image file to edit"""
    source: str = ""
    """prompt describing the input image"""
    target: str = ""
    """prompt describing the wanted edit"""
    method: Method = "reward-dds"
    """dds / reward-dds (the others distil the target prompt starting from the image)"""
    out: Path = Path("out/edit")
    """run folder: image.png, source.png, video, log.jsonl, config.json, checkpoint, summary.json"""
    n_noises: int = 5
    """N: noise candidates per reward step"""

    def prompt_texts(self) -> dict[str, str]:
        return {"source prompt": self.source, "target prompt": self.target}



def resolve(cfg: CommonConfig) -> CommonConfig:
    """Fill the None fields from the prior's defaults and check every option (ValueError)."""
    d = prior_defaults(cfg.prior, cfg.method)
    if cfg.reward is None:
        d["reward"] = default_reward(cfg.prior)[0]
    if hasattr(cfg, "init_samples"):  # text-to-image: the family's sampled start, unless --init chose one
        sampled = family_defaults(cfg.prior).init_samples.get(cfg.method.removeprefix("reward-"), 0)
        d["init_samples"] = 0 if getattr(cfg, "init", None) is not None else sampled
        if hasattr(cfg, "init"):
            d["init"] = "colour"
    cfg = dataclasses.replace(cfg, **{k: v for k, v in d.items() if getattr(cfg, k) is None})
    check_options(cfg)
    if cfg.method.removeprefix("reward-") == "vsd" and cfg.vsd_lora_rank > 0 and importlib.util.find_spec(
            "peft") is None:
        raise ValueError(f"VSD with a LoRA particle model (--vsd-lora-rank {cfg.vsd_lora_rank}, the default for "
                         "this prior) needs the optional package 'peft': pip install 'rewardsds[lora]' (or pass "
                         "--vsd-lora-rank 0 to train a full copy of the U-Net)")
    return cfg


def check_options(cfg: DistillOptions) -> None:
    """The options no typed constructor checks (seed, device, counts), diffusers' `check_inputs` style:
    ValueError naming the option and its value. Guidance, loop and weighting check their own fields."""
    check_device(cfg.device)
    if cfg.vsd_lora_rank is not None:
        check_int("vsd_lora_rank", cfg.vsd_lora_rank, 0, 256)
    if cfg.vsd_lr is not None:
        check_float("vsd_lr", cfg.vsd_lr, 0.0, lo_open=True)
    if getattr(cfg, "init_samples", 0):
        check_int("init_samples", cfg.init_samples, 0, 64)
        check_int("init_sample_steps", cfg.init_sample_steps, 1, 1000)
        check_float("init_sample_cfg", cfg.init_sample_cfg, 0.0)
        if getattr(cfg, "init", "colour") == "image":
            raise ValueError("--init-samples replaces --init: drop one of --init image and --init-samples")
    for name in ("seed", "checkpoint_every", "batch", "threads"):
        value = getattr(cfg, name, None)
        if value is None or (name == "threads" and value == "auto"):
            continue
        if name == "seed":
            check_seed(name, value)
        else:
            check_int(name, value, 1, 1024 if name != "checkpoint_every" else 10**7)


def check_device(spec: str) -> None:
    if spec == "auto":
        return
    kind, _, index = spec.partition(":")
    if kind not in DEVICE_TYPES or (index and not index.isdigit()):
        raise ValueError(f"--device must be auto, {', '.join(DEVICE_TYPES)} or cuda:N, got {spec!r}")


def guidance_config(cfg: CommonConfig) -> GuidanceConfig:
    return GuidanceConfig(
        method=cfg.method, cfg=cfg.cfg, preview_cfg=cfg.preview_cfg, n_noises=cfg.n_noises,
        denoise_steps=cfg.denoise_steps, preview_schedule=cfg.preview_schedule, negative_prompt=cfg.negative_prompt,
        weighting=Weighting(cfg.weighting, temperature=cfg.softmax_temperature,
                            normalize=cfg.softmax_normalize, scale=cfg.weight_scale),
        bridge_src=BRIDGE_SRC, bridge_tgt=BRIDGE_TGT, time_weighting=cfg.time_weighting, vsd_lr=cfg.vsd_lr,
        vsd_lora_rank=cfg.vsd_lora_rank)


def loop_config(cfg: CommonConfig) -> LoopConfig:
    return LoopConfig(steps=cfg.steps, lr=cfg.lr, reward_steps=cfg.reward_steps, t_min=cfg.t_min,
                      t_max=cfg.t_max, checkpoint_every=cfg.checkpoint_every,
                      frame_every=max(1, cfg.steps // 60))


# Fields that may differ between a run and its resumption (they do not change what is computed so far).
RESUMABLE_FIELDS = ("out", "resume", "overwrite", "progress", "checkpoint_every", "steps", "device", "threads",
                    "allow_unknown_words", "video_resolution", "video_frames", "mesh_resolution", "mesh_level")


# Options added after runs were first identified by their resolved config (sweep hashes, checkpoint run
# ids), each with the value the code used before the option existed: a run that holds that value is
# identified without the field, so adding an option neither renames earlier sweep runs nor refuses their
# checkpoints. VSD_ONLY: read by the vsd methods alone. SCHEME_ONLY: options read by one weighting
# scheme alone, with the value every earlier run of another scheme held (so a later change of their
# default renames no run of another scheme).
IMPLICIT_BEFORE = {"weight_scale": "each", "time_weighting": "sds", "vsd_lora_rank": 0, "vsd_lr": 3e-4,
                   "preview_schedule": "from-t", "preview_decoder": None, "init_samples": 0,
                   "init_sample_cfg": 4.0, "init_sample_steps": 20}
VSD_ONLY = ("vsd_lora_rank", "vsd_lr")
SCHEME_ONLY = {"softmax_normalize": ("softmax", "none"), "softmax_temperature": ("softmax", 1.0),
               "weight_scale": ("top-bottom", "each")}


def identity(d: dict, method: str) -> dict:
    """A resolved config's dict without the fields that do not tell runs apart (IMPLICIT_BEFORE, VSD_ONLY,
    SCHEME_ONLY)."""
    vsd = method.removeprefix("reward-") == "vsd"
    d = {k: (SCHEME_ONLY[k][1] if k in SCHEME_ONLY and "weighting" in d and d["weighting"] != SCHEME_ONLY[k][0]
             else v) for k, v in d.items()}
    return {k: v for k, v in d.items()
            if not ((k in IMPLICIT_BEFORE and v == IMPLICIT_BEFORE[k]) or (k in VSD_ONLY and not vsd))}


def run_id(cfg) -> dict:
    """What identifies a run in its checkpoint: the resolved config without RESUMABLE_FIELDS (and as
    `identity`), as JSON values (so a tuple and the list it was saved as compare equal)."""
    d = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE_FIELDS}
    return json.loads(json.dumps(identity(d, cfg.method), default=str))


@dataclass(frozen=True)
class Preset:
    """A named partial config: the fields it sets become the command's defaults, which flags override."""

    method: str | None = None
    n_noises: int | None = None
    denoise_steps: int | None = None
    preview_schedule: str | None = None
    reward_steps: float | None = None
    steps: int | None = None

    def apply(self, config_cls: type, name: str):
        """`config_cls()` with this preset's fields; a field the command lacks is an error."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        fields = {f.name for f in dataclasses.fields(config_cls)}
        missing = sorted(set(values) - fields)
        if missing:
            raise ValueError(f"preset {name!r} sets {', '.join(missing)}, which this command does not have")
        return config_cls(**values)


PRESETS: dict[str, Preset] = {
    "paper-full": Preset(n_noises=10, denoise_steps=15, reward_steps=1.0, preview_schedule="global"),
    "paper-small": Preset(n_noises=2, denoise_steps=1, reward_steps=0.1),
    "sds": Preset(method="sds"),
    "fast": Preset(n_noises=2, denoise_steps=1, steps=100),
}

