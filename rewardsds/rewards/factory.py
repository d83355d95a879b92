"""Build a reward from a short spec string (the CLI's ``--reward``).

Grammar::

    spec   := term ("+" term)*               weighted sum -> MixReward
    term   := [weight "*"] single             weight: a float, e.g. 0.5, -1, 1e-3 (not 1e+3)
    single := name ["@" path]                 path: weights for that model (see below)
            | module.path:function            any callable (images, prompts) -> scores, a Reward, or a
                                              Reward subclass built without arguments

Names (explicit below, no hidden registry):
    world-clip        the embedded world's CLIP, CLIPScore x100
    world-aesthetic   the embedded world's aesthetic predictor (rewardsds.world.train_aesthetic)
    world3d-clip      the embedded 3D world's CLIP (view-invariant), CLIPScore x100, as world-clip
    clip, clipscore   CLIPScore x100, openai/clip-vit-large-patch14 (or @folder)
    pickscore         PickScore, yuvalkirstain/PickScore_v1 (or @folder)
    aesthetic         LAION aesthetic predictor on CLIP ViT-L/14; needs @head.pth (linear or MLP head)
    imagereward       ImageReward-v1.0 (or @checkpoint); optional extra rewardsds[imagereward]
    hpsv2             HPSv2.1 (or @HPS_v2*.pt); optional extra rewardsds[openclip]
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from .base import CallableReward, MixReward, Reward

KNOWN = ("world-clip", "world-aesthetic", "world3d-clip", "clip", "clipscore", "pickscore", "aesthetic", "imagereward",
         "hpsv2")


_WEIGHT = re.compile(r"^\s*(?P<w>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE]-?\d+)?)\s*\*\s*(?P<rest>.*)$")
_CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_reward(spec: str, device: str = "cpu", world_dir: str | Path | None = None) -> Reward:
    """Parse ``spec`` (see the module docstring); ``world_dir`` replaces the shipped world weights."""
    from .._compat import quiet_loading

    quiet_loading()
    terms = _split_terms(spec.strip())
    if len(terms) == 1 and not _WEIGHT.match(terms[0]):
        return _load_single(terms[0], device, world_dir)
    rewards, weights = [], []
    for term in terms:
        m = _WEIGHT.match(term)
        weights.append(float(m["w"]) if m else 1.0)
        rewards.append(_load_single(m["rest"] if m else term, device, world_dir))
    return MixReward(rewards, weights)


def local_weights(spec: str) -> list[Path]:
    """The local files/folders a spec loads weights from, without loading anything: the world's shipped
    models and every ``name@path`` that exists on disk (hub ids and ``module:function`` code are not
    weights on disk). The sweep fingerprints them so a retrained reward never reuses old runs."""
    from ..world import paths

    out = []
    for _, name, arg in _unweighted(spec):
        name, arg = name.strip().lower(), arg.strip()
        if arg and Path(arg).expanduser().exists():
            out.append(Path(arg).expanduser())
        elif name == "world-clip":
            out.append(paths.clip_dir())
        elif name == "world-aesthetic":
            out.append(paths.aesthetic_dir())
        elif name == "world3d-clip":
            from ..world3d import paths as paths3d

            out.append(paths3d.clip_dir())
    return out


def world3d_clip_folders(spec: str) -> list[Path]:
    """The 3D world CLIP folders a spec scores with (its world3d-clip terms: @path, else the shipped one),
    without loading anything; gen3d asks each how it wants its captions (`world3d.paths.clip_captions`)."""
    from ..world3d import paths as paths3d

    return [Path(arg.strip()).expanduser() if arg.strip() else paths3d.clip_dir()
            for _, name, arg in _unweighted(spec) if name.strip().lower() == "world3d-clip"]


def _unweighted(spec: str) -> list[tuple[str, str, str]]:
    """(term without its weight, name, path after "@" or "") for each term of a spec (ValueError if one is empty)."""
    out = []
    for term in _split_terms(spec.strip()):
        m = _WEIGHT.match(term)
        rest = (m["rest"] if m else term).strip()
        name, _, arg = rest.partition("@")
        out.append((rest, name, arg))
    return out


def spec_problem(spec: str) -> str | None:
    """What is wrong with a reward spec without loading anything (an unknown name, an empty term, a
    ``name@path`` whose path does not exist), as one sentence; None when it may load. Hub ids cannot be
    told from local paths here, so only a path that looks local (absolute, ./, ../ or ~) must exist."""
    try:
        terms = _unweighted(spec)
    except ValueError as e:
        return str(e)
    for rest, name, arg in terms:
        if name.strip().lower() not in KNOWN and not _CALLABLE.match(rest):
            return f"unknown reward {rest!r}; known names: {', '.join(KNOWN)}, or module.path:function"
        arg = arg.strip()
        if arg and arg.startswith(("/", "./", "../", "~")) and not Path(arg).expanduser().exists():
            return f"no such file or folder {arg!r} (in reward {rest!r})"
    return None


def _starts_term(text: str) -> bool:
    m = _WEIGHT.match(text)
    rest = (m["rest"] if m else text).strip()
    return rest.partition("@")[0].strip().lower() in KNOWN or bool(_CALLABLE.match(rest))


def _split_terms(spec: str) -> list[str]:
    """Split on "+", except inside an @path when what follows is not a new term: LAION's head file
    is literally called ``sac+logos+ava1-l14-linearMSE.pth``."""
    pieces = spec.split("+")
    terms = [pieces[0]]
    for piece in pieces[1:]:
        if "@" in terms[-1] and not _starts_term(piece):
            terms[-1] += "+" + piece
        else:
            terms.append(piece)
    terms = [t.strip() for t in terms]
    if not all(terms):
        raise ValueError(f"empty term in reward spec {spec!r}; known names: {', '.join(KNOWN)}")
    return terms


def _load_single(spec: str, device: str, world_dir) -> Reward:
    name, _, arg = spec.partition("@")
    name, arg = name.strip().lower(), arg.strip() or None
    if name in KNOWN:
        return _load_named(name, arg, device, world_dir)
    if ":" in spec:
        return _load_callable(spec)
    raise ValueError(f"unknown reward {spec!r}; known names: {', '.join(KNOWN)}, "
                     "or module.path:function")


def _load_named(name: str, arg: str | None, device: str, world_dir) -> Reward:
    from ..world import paths

    world = Path(world_dir) if world_dir is not None else paths.weights_dir()
    if name == "world-clip":
        from .clip_score import CLIPScoreReward

        return CLIPScoreReward.from_pretrained(arg or world / "clip", device=device, scale=100.0,
                                               name="world-clip")
    if name == "world3d-clip":  # the same reward class and scale as world-clip, over the 3D world's CLIP
        from ..world3d import paths as paths3d
        from .clip_score import CLIPScoreReward

        # `require`: a missing folder is "not trained yet, run ...", not transformers' bare OSError
        folder = Path(arg) if arg else paths3d.require(paths3d.clip_dir(), "config.json")
        return CLIPScoreReward.from_pretrained(folder, device=device, scale=100.0, name="world3d-clip")
    if name == "world-aesthetic":
        from .aesthetic import AestheticReward

        folder = Path(arg) if arg else world / "aesthetic"
        return AestheticReward.from_pretrained(folder / "vision", folder / "head.safetensors", device=device,
                                               name="world-aesthetic")
    if name in ("clip", "clipscore"):
        from .clip_score import CLIPScoreReward

        return CLIPScoreReward.from_pretrained(arg or "openai/clip-vit-large-patch14", device=device)
    if name == "pickscore":
        from .clip_score import PickScoreReward

        return PickScoreReward.from_pretrained(arg or "yuvalkirstain/PickScore_v1", device=device)
    if name == "aesthetic":
        from .aesthetic import AestheticReward

        if arg is None:
            raise ValueError("'aesthetic' needs the head file: aesthetic@/path/"
                             "sac+logos+ava1-l14-linearMSE.pth (or sa_0_4_vit_l_14_linear.pth)")
        return AestheticReward.from_pretrained("openai/clip-vit-large-patch14", arg, device=device)
    if name == "imagereward":
        from .imagereward import ImageRewardReward

        return ImageRewardReward.from_pretrained(arg or "ImageReward-v1.0", device=device)
    if name == "hpsv2":
        from .hps import HPSv2Reward

        return HPSv2Reward.from_pretrained(arg, device=device)
    raise AssertionError(name)  # KNOWN and the branches above are kept in step


def _load_callable(spec: str) -> Reward:
    """``module.path:name`` -> a Reward: a Reward instance as is, a Reward subclass built with no
    arguments, any other callable wrapped in `CallableReward`. Every failure is a one-sentence ValueError;
    what the callable returns is checked on each call (`Reward.__call__`)."""
    if not _CALLABLE.match(spec):
        raise ValueError(f"reward {spec!r} is not a known name and not of the form module.path:function")
    module, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - the module's own code may raise anything (SyntaxError, ...)
        if isinstance(e, ModuleNotFoundError) and e.name and (module + ".").startswith(e.name + "."):
            hint = " (is its folder on PYTHONPATH?)" if e.name == module.partition(".")[0] else ""
            raise ValueError(f"cannot load reward {spec!r}: no module named {e.name!r}{hint}") from e
        raise ValueError(f"cannot load reward {spec!r}: importing {module!r} failed with "
                         f"{type(e).__name__}: {e}") from e
    try:
        obj = getattr(mod, attr)
    except AttributeError as e:
        raise ValueError(f"cannot load reward {spec!r}: module {module!r} has no attribute {attr!r}") from e
    if isinstance(obj, Reward):
        return obj
    if isinstance(obj, type) and issubclass(obj, Reward):
        try:
            return obj()
        except TypeError as e:
            raise ValueError(f"reward {spec!r} is a Reward class that cannot be built without arguments "
                             f"({e}); point the spec at an instance or a function instead") from e
    if not callable(obj):
        raise ValueError(f"reward {spec!r} names a {type(obj).__name__}, which is not callable: a reward is a "
                         "function (images, prompts) -> scores or a Reward")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have none: their calls are checked when scored
        signature = None
    if signature is not None:
        try:
            signature.bind(None, None)
        except TypeError:
            raise ValueError(f"reward {spec!r} cannot be called as f(images, prompts): its signature is "
                             f"{signature}") from None
    return CallableReward(obj, name=spec)
