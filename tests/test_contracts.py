"""Every prior and reward available offline against the shared contracts (tests/contracts.py), one test
per (backend, check). A new backend adds one line to PRIORS or REWARDS; a known library bug xfails
exactly one (backend, check) pair in XFAIL, with the numbers in the reason."""

from __future__ import annotations

import pytest
import torch
from _builders import build_tiny_aesthetic, build_tiny_clip, build_tiny_multiview_prior, redness
from contracts import PRIOR_CHECKS, PROMPTS, REWARD_CHECKS, check_prior, check_reward

from rewardsds.priors.analytic import GaussianPrior
from rewardsds.priors.base import EpsPrediction
from rewardsds.priors.diffusers_prior import DiffusersPrior
from rewardsds.priors.multiview import MultiViewPrior
from rewardsds.rewards import CallableReward, MixReward
from rewardsds.rewards.aesthetic import AestheticReward
from rewardsds.rewards.clip_score import CLIPScoreReward, PickScoreReward
from rewardsds.rewards.factory import load_reward
from rewardsds.world import paths

PRIORS = ("gaussian", "tiny-sd", "tiny-pixel", "world", "tiny-multiview")
# reward -> the image side it is checked at: the world prior's 32 for the world's rewards, 24 (resized and
# cropped to the tiny CLIP's 16) for the tiny adapters, 16 for the plain callables
REWARDS = {"callable": 16, "callable-spec": 16, "mix": 32, "world-clip": 32, "world-aesthetic": 32,
           "tiny-clipscore": 24, "tiny-pickscore": 24, "tiny-aesthetic": 24}
XFAIL: dict[tuple[str, str], str] = {}  # (backend, check) -> reason (a library bug, reported with numbers)


def _xfail_known(request, backend: str, check: str) -> None:
    """Mark this one (backend, check) pair xfail (strict) when XFAIL lists it. Applied in the test, not as
    a parametrize mark: a combined (backend, check) parametrisation would defeat the module-scoped
    backend fixtures (one load per pair instead of one per backend)."""
    if (backend, check) in XFAIL:
        request.applymarker(pytest.mark.xfail(reason=XFAIL[backend, check], strict=True))


@pytest.fixture(scope="module")
def prior(request):
    name = request.param
    if name == "gaussian":
        means = dict(zip(PROMPTS, [(0.9, 0.1, 0.1), (0.1, 0.1, 0.9), (0.1, 0.8, 0.2)]))
        return GaussianPrior(means, std=0.1, size=4)
    if name == "tiny-multiview":  # a sample is 4 views, each with its camera (contracts._inputs)
        return MultiViewPrior.from_pretrained(build_tiny_multiview_prior(
            request.getfixturevalue("tmp_path_factory").mktemp("contract_mv")))
    folder = {"tiny-sd": lambda: request.getfixturevalue("tiny_sd_dir"),
              "tiny-pixel": lambda: request.getfixturevalue("tiny_pixel_dir"), "world": paths.prior_dir}[name]()
    return DiffusersPrior.from_pretrained(folder)


@pytest.fixture(scope="module")
def world_clip():
    return load_reward("world-clip")


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("contract_clip"))


@pytest.fixture(scope="module")
def reward(request):
    name = request.param
    if name == "callable":
        return CallableReward(redness)
    if name == "callable-spec":
        return load_reward("tests.helpers.rewards:redness")
    if name == "mix":
        return MixReward([request.getfixturevalue("world_clip"), CallableReward(redness)], [1.0, -0.5])
    if name == "world-clip":
        return request.getfixturevalue("world_clip")
    if name == "world-aesthetic":
        return load_reward("world-aesthetic")
    if name == "tiny-clipscore":
        return CLIPScoreReward.from_pretrained(request.getfixturevalue("tiny_clip_dir"), clamp=False, batch_size=2)
    if name == "tiny-pickscore":
        folder = request.getfixturevalue("tiny_clip_dir")
        return PickScoreReward.from_pretrained(folder, processor_path=folder)
    if name == "tiny-aesthetic":
        folder = build_tiny_aesthetic(request.getfixturevalue("tmp_path_factory").mktemp("contract_aes"))
        return AestheticReward.from_pretrained(folder / "vision", folder / "head.safetensors", batch_size=2)
    raise AssertionError(name)


@pytest.mark.parametrize("check", PRIOR_CHECKS)
@pytest.mark.parametrize("prior", PRIORS, indirect=True)
def test_prior_contract(prior, check, request):
    _xfail_known(request, request.node.callspec.params["prior"], check)
    torch.manual_seed(0)
    check_prior(prior, only=[check])


@pytest.mark.parametrize("check", REWARD_CHECKS)
@pytest.mark.parametrize("reward", REWARDS, indirect=True)
def test_reward_contract(reward, check, request):
    name = request.node.callspec.params["reward"]
    _xfail_known(request, name, check)
    check_reward(reward, REWARDS[name], only=[check])


def test_every_check_runs_in_one_call(tiny_pixel_dir):
    """`check_prior`/`check_reward` without ``only`` run the whole contract (what a new backend calls)."""
    check_prior(DiffusersPrior.from_pretrained(tiny_pixel_dir))
    check_reward(CallableReward(redness), 8)
    with pytest.raises(KeyError, match="unknown checks"):
        check_reward(CallableReward(redness), 8, only=["no-such-check"])


def test_the_contracts_catch_a_broken_backend():
    """The checks are not vacuous: a prior that calls its network once per half and a reward whose score
    depends on the rest of the batch fail them."""

    class TwoCalls(GaussianPrior):
        def predict_eps(self, x_t, t, emb):
            first, second = super().predict_eps(x_t, t, emb), super().predict_eps(x_t, t, emb)
            return EpsPrediction(first.cond, second.uncond)

    with pytest.raises(AssertionError, match="calls for one predict_eps"):
        check_prior(TwoCalls(dict(zip(PROMPTS, [(1.0, 0.0, 0.0)] * 3)), size=4), only=["one_call"])

    def batch_dependent(images, prompts):
        return images.mean((1, 2, 3)) - images.mean()  # score i depends on the other images

    with pytest.raises(AssertionError):
        check_reward(CallableReward(batch_dependent), 8, only=["batch_consistency"])
