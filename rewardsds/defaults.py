"""The prior families' defaults (`FamilyDefaults`, keyed by `model_index.json`'s `_class_name`): the world's
small pixel-space prior wants a different guidance scale, learning rate, start, reward and VSD particle
model than Stable Diffusion's latent space. `config.resolve` fills a config's None fields from these.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from .losses import TimeWeighting
from .world.paths import WORLD_FAMILY
from .world3d.paths import WORLD3D_FAMILY, WORLD3D_MV_FAMILY
from .worlds import WORLD_PRIORS


@dataclass(frozen=True)
class FamilyDefaults:
    """Defaults of one prior family (2D and 3D); `guidance_scale` per base method; the `edit_*` fields
    are DDS's (the edit methods)."""

    steps: int
    lr: float
    guidance_scale: dict[str, float]
    edit_steps: int
    edit_lr: float
    steps_3d: int
    views_3d: int
    render_resolution_3d: int
    view_dependent_3d: bool
    reward: str = "world-clip"
    """the reward of reward-* methods when --reward is not given"""
    reward_fallback: str | None = None
    """used instead of `reward` when the optional package `reward` needs is not installed"""
    t_range: tuple[float, float] = (0.02, 0.98)
    edit_t_range: tuple[float, float] = (0.02, 0.98)
    edit_time_weighting: TimeWeighting = "sds"
    vsd_lora_rank: int = 0
    vsd_lr: float = 3e-4
    init_samples: dict[str, int] = dataclasses.field(default_factory=dict)
    """text-to-image's --init-samples per base method (absent: 0, start from --init)"""
    guidance_scale_3d: dict[str, float] | None = None
    """gen3d's guidance scale per base method (None: `guidance_scale`)"""
    representation_3d: str = "field"
    """what gen3d optimises when --representation is not given: field or gaussians"""
    gaussian_steps_3d: int | None = None
    """gen3d's steps with Gaussians (None: `steps_3d`)"""
    reward_view_words_3d: bool | None = None
    """gen3d: view suffixes in the reward's prompts (None: as the prior's, i.e. `view_dependent_3d` after
    multi-view priors drop them)"""


# The world's text-to-image SDS family starts from the reward's best of 4 prior samples and distils at CFG
# 7.5 (issue 11, README "Two-object prompts"): at CFG 20 the 32-px prior oversaturates and pinches shapes,
# which undoes a right two-object layout; the sampled start settles the layout before distillation can.
WORLD_DEFAULTS = FamilyDefaults(
    steps=300, lr=0.02, guidance_scale={"sds": 7.5, "vsd": 7.5, "bridge": 20.0, "dds": 7.5},
    edit_steps=300, edit_lr=0.02, steps_3d=400, views_3d=4, render_resolution_3d=32,
    view_dependent_3d=False,  # the world's vocabulary has no view words
    reward="world-clip", vsd_lora_rank=0, vsd_lr=3e-4,  # a full copy of the 4M-parameter U-Net is cheap
    init_samples={"sds": 4},
    # a field has no sampled start; the 3D table and its gates were measured at SDS CFG 20
    guidance_scale_3d={"sds": 20.0, "vsd": 7.5, "bridge": 20.0, "dds": 7.5})
# Until 2026-11 (Table 1 of the first rounds, every ablation table, the 3D world): SDS at CFG 20 from the
# backdrop colour. Pass `--cfg 20 --init-samples 0` to reproduce those runs.
WORLD_DEFAULTS_BEFORE = dataclasses.replace(
    WORLD_DEFAULTS, guidance_scale={**WORLD_DEFAULTS.guidance_scale, "sds": 20.0}, init_samples={},
    guidance_scale_3d=None)
# Paper values for Stable Diffusion (App. B): 1000 steps, Adam lr 0.01 for text-to-image *and* editing, CFG
# 100 for SDS, 7.5 for VSD; SDS-Bridge's official CFG 40. DDS: 200 steps (paper), and the DDS reference's
# (Hertz et al. 2023) w(t) = 1 and t in [50, 950]; its lr 0.1 belongs to plain SGD on a loss divided by the
# latent's H*W, not to Adam. VSD: LoRA rank 4 on every attention layer (diffusers' LoRAAttnProcessor default,
# used so by RewardSDS' official 2D code, ProlificDreamer and threestudio), AdamW lr 3e-4 and no weight decay
# (RewardSDS' official 2D code; ProlificDreamer and threestudio train theirs at 1e-4 for 3D).
SD_DEFAULTS = FamilyDefaults(
    steps=1000, lr=0.01, guidance_scale={"sds": 100.0, "vsd": 7.5, "bridge": 40.0, "dds": 7.5},
    edit_steps=200, edit_lr=0.01, steps_3d=5000, views_3d=1, render_resolution_3d=64, view_dependent_3d=True,
    reward="imagereward", reward_fallback="clip", edit_t_range=(0.05, 0.95), edit_time_weighting="constant",
    vsd_lora_rank=4, vsd_lr=3e-4)
# The 3D world's prior is the 2D world's model and trainer on 3D renders (same pixel space, size, schedule),
# so its defaults are the 2D world's as they were before the sampled start (nothing of that was measured on
# its prior); only its reward and its view words differ: it was trained on view-suffixed captions, so gen3d
# appends them by default. It distils Gaussians for a third of the field's 400 steps: on its 3D table they
# read at least as right as the field at 400 steps (README, "The 3D world") in under half the time, which
# is what brings the default run under 5 minutes on 2 CPU cores (the field took 10).
WORLD3D_DEFAULTS = dataclasses.replace(WORLD_DEFAULTS_BEFORE, view_dependent_3d=True, reward="world3d-clip",
                                       representation_3d="gaussians", gaussian_steps_3d=133)
# The multi-view prior reads cameras, not view words; its reward is still world3d-clip, which was trained on
# view-suffixed captions and cannot place a relation of the scene frame in a view without them (a back view
# shows "left of" as right of), so the reward keeps reading the suffix of each view's camera.
WORLD3D_MV_DEFAULTS = dataclasses.replace(WORLD3D_DEFAULTS, view_dependent_3d=False, reward_view_words_3d=True)
REWARD_PACKAGES = {"imagereward": ("ImageReward", "imagereward")}
"""reward name -> (the module it imports, the rewardsds extra that installs it)"""
WORLD_REWARDS = ("world-clip", "world-aesthetic", "world3d-clip")
EMBEDDED_FAMILIES = (WORLD_FAMILY, WORLD3D_FAMILY, WORLD3D_MV_FAMILY)
"""the pixel-space embedded worlds' families (solid world backdrop, no SD-only options)"""
FAMILY_DEFAULTS: dict[str, FamilyDefaults] = {WORLD_FAMILY: WORLD_DEFAULTS, WORLD3D_FAMILY: WORLD3D_DEFAULTS,
                                              WORLD3D_MV_FAMILY: WORLD3D_MV_DEFAULTS}
"""model_index.json `_class_name` -> defaults; any other family (Stable Diffusion pipelines) gets SD_DEFAULTS"""


def prior_family(prior: str) -> str:
    """The family of a prior spec: a `WORLD_PRIORS` alias ('world', 'world3d') is its world's; a local
    folder's comes from its model_index.json (reads that file only, loads nothing); hub ids count as
    Stable Diffusion."""
    if prior in WORLD_PRIORS:
        return WORLD_PRIORS[prior].family
    try:
        index = json.loads((Path(prior).expanduser() / "model_index.json").read_text())
    except (OSError, ValueError):
        return "StableDiffusionPipeline"
    return str(index.get("_class_name", "")) if isinstance(index, dict) else ""


def family_defaults(prior: str) -> FamilyDefaults:
    return FAMILY_DEFAULTS.get(prior_family(prior), SD_DEFAULTS)


def is_world_prior(prior: str) -> bool:
    """'world', or a folder holding a world prior (e.g. one retrained by the world's trainer)."""
    return prior_family(prior) == WORLD_FAMILY


def is_embedded_world(prior: str) -> bool:
    """A prior of either embedded world (2D or 3D): pixel space, the world backdrop, world rewards."""
    return prior_family(prior) in EMBEDDED_FAMILIES


def prior_defaults(prior: str, method: str) -> dict:
    """Steps, lr, guidance scale, timestep range and weighting, and VSD particle model for a prior
    family and method (the reward: `default_reward`)."""
    d, base = family_defaults(prior), method.removeprefix("reward-")
    edit = base == "dds"
    t_min, t_max = d.edit_t_range if edit else d.t_range
    return {"steps": d.edit_steps if edit else d.steps, "lr": d.edit_lr if edit else d.lr,
            "cfg": d.guidance_scale[base], "t_min": t_min, "t_max": t_max,
            "time_weighting": d.edit_time_weighting if edit else "sds", "vsd_lora_rank": d.vsd_lora_rank,
            "vsd_lr": d.vsd_lr}


def default_reward(prior: str) -> tuple[str, str | None]:
    """(the family's reward, a line saying why it is not the family's first choice, or None): the
    family's `reward`, or its `reward_fallback` when the package that reward needs is not installed."""
    d = family_defaults(prior)
    module, extra = REWARD_PACKAGES.get(d.reward, (None, None))
    if module is None or d.reward_fallback is None or importlib.util.find_spec(module) is not None:
        return d.reward, None
    return d.reward_fallback, (f"reward: {d.reward_fallback} ({d.reward} is not installed: "
                               f"pip install 'rewardsds[{extra}]')")


def reward_notes(prior: str, reward: str | None) -> list[str]:
    """The stderr lines a run with `--reward reward` (None: the default) on `prior` prints: the fallback
    taken for the default reward, or a warning when a world reward scores another family's images."""
    if reward is None:
        note = default_reward(prior)[1]
        return [note] if note else []
    if is_embedded_world(prior):
        return []
    world = [n for n in reward_names(reward) if n in WORLD_REWARDS]
    if not world:
        return []
    return [f"warning: --reward {reward} uses the embedded world's {' and '.join(world)}, trained on 32-px "
            f"renders of coloured shapes, to score images of the prior {prior!r}; pass a reward for real "
            "images (imagereward, clip, pickscore, hpsv2, aesthetic@HEAD)"]


def reward_names(spec: str) -> list[str]:
    """The lower-case model names of a reward spec's terms ('0.5*world-clip+clip@/x' -> world-clip, clip)."""
    from .rewards.factory import _WEIGHT, _split_terms

    try:
        terms = _split_terms(spec.strip())
    except ValueError:
        return []
    names = []
    for term in terms:
        m = _WEIGHT.match(term)
        names.append((m["rest"] if m else term).partition("@")[0].strip().lower())
    return names
