"""Contract checks every prior and every reward must pass, written once (diffusers' `PipelineTesterMixin`).

    from contracts import check_prior, check_reward
    check_prior(MyPrior(...))                    # every DiffusionPrior (rewardsds.priors.base)
    check_reward(MyReward(...), image_size=32)   # every Reward (rewardsds.rewards.base)

Each contract is a table of named checks (`PRIOR_CHECKS`, `REWARD_CHECKS`); ``only=`` runs a subset,
so `test_contracts.py` reports (and, for a known library bug, xfails) one check of one backend at a time.
The checks use the backend as the library does: per-sample timesteps, fresh random inputs, CPU or the
prior's device. They assert the interface promises, never a backend's numbers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

import torch

from rewardsds.priors.base import DiffusionPrior, EpsPrediction, TextEmbedding
from rewardsds.rewards.base import Reward

PROMPTS = ("a red circle", "a blue square to the left of a yellow triangle", "a small green diamond")
ATOL = RTOL = 1e-4  # batch-vs-single: batched kernels may sum in another order

PRIOR_CHECKS: dict[str, Callable[..., None]] = {}
REWARD_CHECKS: dict[str, Callable[..., None]] = {}


def _prior_check(fn):
    PRIOR_CHECKS[fn.__name__.removeprefix("prior_")] = fn
    return fn


def _reward_check(fn):
    REWARD_CHECKS[fn.__name__.removeprefix("reward_")] = fn
    return fn


def _run(table: dict[str, Callable[..., None]], only: Sequence[str] | None, *args) -> None:
    names = list(table) if only is None else list(only)
    unknown = sorted(set(names) - set(table))
    if unknown:
        raise KeyError(f"unknown checks {unknown}; known: {list(table)}")
    for name in names:
        table[name](*args)


# --- priors -------------------------------------------------------------------------------------------

def check_prior(prior: DiffusionPrior, prompts: Sequence[str] = PROMPTS, only: Sequence[str] | None = None,
                network: torch.nn.Module | None = None) -> None:
    """Run the prior contract (or the checks named in ``only``). ``prompts``: at least 2, in the prior's
    vocabulary. ``network``: the module one `predict_eps` must call exactly once (default: ``prior.unet``
    where there is one; a prior with its own ``calls`` counter is checked on that too)."""
    assert isinstance(prior, DiffusionPrior), type(prior)
    assert len(prompts) >= 2, "the prior contract needs at least 2 prompts"
    _run(PRIOR_CHECKS, only, prior, list(prompts), network)


def _timesteps(prior: DiffusionPrior, b: int) -> torch.Tensor:
    """Distinct per-sample timesteps spread over the schedule (as the candidate step batches them)."""
    T = prior.num_train_timesteps
    return torch.linspace(0.1 * T, 0.9 * T, b).long().to(prior.device)


def _inputs(prior: DiffusionPrior, prompts: list[str], seed: int = 0):
    """One sample per prompt: one row, or for a multi-view prior V rows (i*V + v) sharing the sample's t,
    each with its camera (a ring of V views, `render.sample_camera_sets`)."""
    from rewardsds.render import sample_camera_sets

    g = torch.Generator().manual_seed(seed)
    v = prior.views_per_sample
    x_t = torch.randn((len(prompts) * v, *prior.sample_shape), generator=g).to(prior.device)
    emb = prior.embed(prompts)
    if v > 1:
        emb = emb.repeat(v).with_cameras(sample_camera_sets(len(prompts), v, generator=g).c2w.to(prior.device))
    return x_t, _timesteps(prior, len(prompts)).repeat_interleave(v), emb


@_prior_check
def prior_schedule(prior, prompts, network):
    """alphas_cumprod: a finite float 1-D buffer of length T on the prior's device, in (0, 1], strictly
    decreasing; add_noise mixes x0 and eps with sqrt(a_t), sqrt(1 - a_t)."""
    a = prior.alphas_cumprod
    assert isinstance(a, torch.Tensor) and a.dim() == 1 and a.is_floating_point(), (type(a), getattr(a, "shape", None))
    assert a.shape[0] == prior.num_train_timesteps > 1, (a.shape, prior.num_train_timesteps)
    assert a.device == prior.device
    assert torch.isfinite(a).all() and (a > 0).all() and (a <= 1).all(), (float(a.min()), float(a.max()))
    d = a[1:] - a[:-1]
    assert (d < 0).all(), f"alphas_cumprod not strictly decreasing: step {float(d.max()):.3g} at t={int(d.argmax())}"
    x0 = torch.randn((2, *prior.sample_shape), device=prior.device)
    eps = torch.randn_like(x0)
    t = _timesteps(prior, 2)
    xt = prior.add_noise(x0, eps, t)
    assert xt.shape == x0.shape
    ab = a[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)


@_prior_check
def prior_shapes(prior, prompts, network):
    """sample_shape is (C, H, W) of positive ints, square; image_size a positive int, a whole multiple of
    the sample side (a VAE's downsampling factor, 1 in pixel space)."""
    shape = prior.sample_shape
    assert isinstance(shape, tuple) and len(shape) == 3, shape
    assert all(isinstance(s, int) and s > 0 for s in shape), shape
    assert shape[1] == shape[2], f"sample_shape {shape} is not square"
    size = prior.image_size
    assert isinstance(size, int) and size >= shape[-1] and size % shape[-1] == 0, (size, shape)


@_prior_check
def prior_embed(prior, prompts, network):
    """embed returns a TextEmbedding: cond and uncond [B, L, D] of one shape, finite, no grad; cached per
    (prompt, negative) (one encoder call for the missing prompts, none the second time); a prompt's row
    does not depend on the batch it is encoded with."""
    calls = []
    inner = prior._embed

    def counting(ps):
        calls.append(list(ps))
        return inner(ps)

    prior._embed = counting  # instance attribute: shadows the method for this check only
    try:
        neg = f"contract {uuid.uuid4().hex}"  # a negative prompt no earlier call cached
        emb = prior.embed(prompts, negative_prompt=neg)
        assert isinstance(emb, TextEmbedding), type(emb)
        assert len(calls) == 1, f"embed made {len(calls)} encoder calls for {len(prompts)} new prompts"
        assert emb.cond.dim() == 3 and emb.cond.shape[0] == len(prompts), emb.cond.shape
        assert emb.uncond.shape == emb.cond.shape, (emb.uncond.shape, emb.cond.shape)
        assert emb.cond.is_floating_point() and torch.isfinite(emb.cond).all() and torch.isfinite(emb.uncond).all()
        assert not emb.cond.requires_grad and not emb.uncond.requires_grad
        again = prior.embed(prompts, negative_prompt=neg)
        assert len(calls) == 1, "embed re-encoded prompts it had cached"
        assert torch.equal(again.cond, emb.cond) and torch.equal(again.uncond, emb.uncond)
        # batch independence: encode prompt 0 alone, then behind prompt 1, under two fresh negatives
        alone = prior.embed(prompts[:1], negative_prompt=f"contract {uuid.uuid4().hex}")
        behind = prior.embed([prompts[1], prompts[0]], negative_prompt=f"contract {uuid.uuid4().hex}")
        torch.testing.assert_close(behind.cond[1], alone.cond[0], atol=ATOL, rtol=RTOL)
    finally:
        del prior._embed


@_prior_check
def prior_predict_eps(prior, prompts, network):
    """predict_eps(x_t [B,...], t [B], emb) -> EpsPrediction with cond/uncond of x_t's shape, floating,
    finite, on x_t's device; deterministic; guided(s) = uncond + s (cond - uncond)."""
    x_t, t, emb = _inputs(prior, prompts)
    with torch.no_grad():
        pred = prior.predict_eps(x_t, t, emb)
        again = prior.predict_eps(x_t, t, emb)
    assert isinstance(pred, EpsPrediction), type(pred)
    for half in (pred.cond, pred.uncond):
        assert half.shape == x_t.shape, (half.shape, x_t.shape)
        assert half.is_floating_point() and half.device == x_t.device, (half.dtype, half.device)
        assert torch.isfinite(half).all()
    assert torch.equal(pred.cond, again.cond) and torch.equal(pred.uncond, again.uncond), "not deterministic"
    torch.testing.assert_close(pred.guided(7.5), pred.uncond + 7.5 * (pred.cond - pred.uncond))


class _CallCounter:
    """Counts forward calls of `network` (a hook) and of the prior's own `calls` counter, if any."""

    def __init__(self, prior, network):
        self.prior, self.network = prior, network
        if network is None:
            network = getattr(prior, "unet", None)
            self.network = network if isinstance(network, torch.nn.Module) else None
        assert self.network is not None or hasattr(prior, "calls"), \
            "cannot count network calls: pass network= (or give the prior a `calls` counter)"

    def __enter__(self):
        self.hooked, self.counted0 = 0, getattr(self.prior, "calls", None)
        self.handle = (self.network.register_forward_hook(lambda *_: setattr(self, "hooked", self.hooked + 1))
                       if self.network is not None else None)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()

    def counts(self) -> dict[str, int]:
        out = {}
        if self.handle is not None:
            out["network forward"] = self.hooked
        if self.counted0 is not None:
            out["prior.calls"] = self.prior.calls - self.counted0
        return out


@_prior_check
def prior_one_call(prior, prompts, network):
    """One predict_eps is ONE network call (cond and uncond batched together), for any batch size."""
    for b in (1, len(prompts)):
        x_t, t, emb = _inputs(prior, prompts[:b])
        with _CallCounter(prior, network) as c, torch.no_grad():
            prior.predict_eps(x_t, t, emb)
        assert all(n == 1 for n in c.counts().values()), f"batch {b}: {c.counts()} calls for one predict_eps"


@_prior_check
def prior_batch_consistency(prior, prompts, network):
    """Sample i of a batched predict_eps equals the call on sample i alone (x_t, t and conditioning rows; a
    sample is one row, or V consecutive rows for a multi-view prior)."""
    x_t, t, emb = _inputs(prior, prompts, seed=1)
    v = prior.views_per_sample
    with torch.no_grad():
        batched = prior.predict_eps(x_t, t, emb)
        for i in range(len(prompts)):
            rows = torch.arange(i * v, (i + 1) * v)
            one = prior.predict_eps(x_t[rows], t[rows], emb.select(rows))
            for half, name in ((batched.cond, "cond"), (batched.uncond, "uncond")):
                torch.testing.assert_close(half[rows], getattr(one, name), atol=ATOL, rtol=RTOL,
                                           msg=lambda m, i=i, name=name: f"sample {i} ({name}): {m}")


@_prior_check
def prior_no_grad(prior, prompts, network):
    """The prior is frozen: no parameter requires grad; under torch.no_grad nothing it returns carries a
    graph; with grad enabled, backprop through predict_eps reaches no parameter."""
    trainable = [n for n, p in prior.named_parameters() if p.requires_grad]
    assert not trainable, f"{len(trainable)} prior parameters require grad, e.g. {trainable[:3]}"
    x_t, t, emb = _inputs(prior, prompts[:1])
    x_t.requires_grad_(True)
    with torch.no_grad():
        pred = prior.predict_eps(x_t, t, emb)
    assert not pred.cond.requires_grad and not pred.uncond.requires_grad, "graph built under torch.no_grad"
    pred = prior.predict_eps(x_t, t, emb)
    if pred.cond.requires_grad:
        (pred.cond.sum() + pred.uncond.sum()).backward()
    leaked = [n for n, p in prior.named_parameters() if p.grad is not None]
    assert not leaked, f"gradient reached {len(leaked)} prior parameters, e.g. {leaked[:3]}"


@_prior_check
def prior_encode_decode(prior, prompts, network):
    """encode: images [B,3,S,S] in [0,1] (S = image_size) -> x0 [B, *sample_shape], differentiable w.r.t.
    the images (3D SDS backpropagates through it) without touching parameters; decode: back to
    [B,3,S,S] in [0,1]. Pixel-space priors round-trip exactly."""
    s = prior.image_size
    images = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(2)).to(prior.device)
    images.requires_grad_(True)
    x0 = prior.encode(images)
    assert x0.shape == (2, *prior.sample_shape), (x0.shape, prior.sample_shape)
    assert torch.isfinite(x0).all()
    x0.square().sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0, \
        "encode is not differentiable w.r.t. the images"
    leaked = [n for n, p in prior.named_parameters() if p.grad is not None]
    assert not leaked, f"encode sent gradient to {len(leaked)} prior parameters, e.g. {leaked[:3]}"
    with torch.no_grad():
        out = prior.decode(x0.detach())
    assert out.shape == (2, 3, s, s), (out.shape, s)
    assert out.min() >= 0 and out.max() <= 1, (float(out.min()), float(out.max()))
    if prior.sample_shape == (3, s, s):
        torch.testing.assert_close(out, images.detach(), atol=1e-6, rtol=0)


# --- rewards ------------------------------------------------------------------------------------------

def check_reward(reward: Reward, image_size: int, prompts: Sequence[str] = PROMPTS,
                 only: Sequence[str] | None = None) -> None:
    """Run the reward contract (or the checks named in ``only``) on ``image_size`` square images."""
    assert isinstance(reward, Reward), type(reward)
    assert len(prompts) >= 2, "the reward contract needs at least 2 prompts"
    _run(REWARD_CHECKS, only, reward, image_size, list(prompts))


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@_reward_check
def reward_output(reward, image_size, prompts):
    """[B,3,H,W] in [0,1] + one prompt per image (list or tuple) -> a finite float Tensor [B] on the CPU
    that needs no grad (even for images that require grad), leaving the images untouched."""
    images = _images(len(prompts), image_size).requires_grad_(True)
    before = images.detach().clone()
    scores = reward(images, prompts)
    assert isinstance(scores, torch.Tensor), type(scores)
    assert scores.shape == (len(prompts),), scores.shape
    assert scores.device.type == "cpu" and scores.is_floating_point(), (scores.device, scores.dtype)
    assert torch.isfinite(scores).all(), scores
    assert not scores.requires_grad, "reward scores carry a graph"
    assert torch.equal(images.detach(), before), "the reward changed its input images"
    torch.testing.assert_close(reward(images.detach(), tuple(prompts)), scores, atol=ATOL, rtol=RTOL)


@_reward_check
def reward_batch_consistency(reward, image_size, prompts):
    """Score i of a batch equals the score of image i alone."""
    images = _images(len(prompts), image_size, seed=1)
    batched = reward(images, prompts)
    single = torch.cat([reward(images[i:i + 1], prompts[i:i + 1]) for i in range(len(prompts))])
    torch.testing.assert_close(batched, single, atol=ATOL, rtol=RTOL)


@_reward_check
def reward_deterministic(reward, image_size, prompts):
    """The same images and prompts score identically twice."""
    images = _images(len(prompts), image_size, seed=2)
    first, second = reward(images, prompts), reward(images, prompts)
    assert torch.equal(first, second), (first, second)


@_reward_check
def reward_rejects_bad_input(reward, image_size, prompts):
    """Wrong image shapes and prompt counts raise ValueError (not a shape error deep in a model)."""
    import pytest

    b, s = len(prompts), image_size
    bad = {"1 channel": (torch.rand(b, 1, s, s), prompts), "no batch dim": (torch.rand(3, s, s), prompts[:1]),
           "4 channels": (torch.rand(b, 4, s, s), prompts), "5-D": (torch.rand(b, 3, 1, s, s), prompts),
           "too few prompts": (torch.rand(b, 3, s, s), prompts[:-1]),
           "too many prompts": (torch.rand(b - 1, 3, s, s), prompts)}
    for what, (images, ps) in bad.items():
        with pytest.raises(ValueError):
            reward(images, ps)
            raise AssertionError(f"{what}: no ValueError for images {tuple(images.shape)}, {len(ps)} prompts")
