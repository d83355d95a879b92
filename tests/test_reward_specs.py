"""``module.path:function`` reward specs: resolved to a callable at load time, and what it returns checked
on every call, so a bad spec is one ValueError naming the reward instead of a traceback mid-run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rewardsds.rewards import CallableReward, MixReward, Reward
from rewardsds.rewards.factory import load_reward

IMAGES, PROMPTS = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), ["a red circle"] * 4


# callables the specs below point at
def returns_int(images, prompts):
    return 0


def returns_none(images, prompts):
    return None


def returns_matrix(images, prompts):
    return torch.zeros(2, 2)


def returns_column(images, prompts):
    return images.mean((1, 2, 3))[:, None]


def returns_numpy(images, prompts):
    return images.mean((1, 2, 3)).numpy().astype(np.float64)


def returns_list(images, prompts):
    return [float(len(p)) for p in prompts]


def returns_strings(images, prompts):
    return ["good"] * len(prompts)


def returns_complex(images, prompts):
    return torch.ones(len(prompts), dtype=torch.complex64)


def returns_two_nans(images, prompts):
    out = images.mean((1, 2, 3))
    out[1], out[3] = float("nan"), float("inf")
    return out


def one_argument(images):
    return images.mean((1, 2, 3))


def takes_images_only_at_call(images, prompts, scale):
    return images.mean((1, 2, 3)) * scale


def fails_inside(images, prompts):
    return len(images, prompts)  # a TypeError raised by the user's own code


class Brightness(Reward):
    name = "brightness"

    def score(self, images, prompts):
        return images.mean((1, 2, 3))


class NeedsAModel(Reward):
    def __init__(self, model):
        self.model = model


NOT_CALLABLE = 3.5


@pytest.mark.parametrize("spec, message", [
    ("os:system", r"reward 'os:system' cannot be called as f\(images, prompts\): its signature is \(command\)"),
    ("test_reward_specs:one_argument", r"cannot be called as f\(images, prompts\)"),
    ("test_reward_specs:takes_images_only_at_call", r"its signature is \(images, prompts, scale\)"),
    ("test_reward_specs:NOT_CALLABLE", "names a float, which is not callable"),
    ("os:sep", "names a str, which is not callable"),
    ("test_reward_specs:nothing_here", "module 'test_reward_specs' has no attribute 'nothing_here'"),
    ("no_such_module_xyz:fn", r"no module named 'no_such_module_xyz' \(is its folder on PYTHONPATH\?\)"),
    ("rewardsds.no_such_module:fn", "no module named 'rewardsds.no_such_module'$"),
    ("test_reward_specs:NeedsAModel", "Reward class that cannot be built without arguments"),
    ("not a:spec", "not a known name and not of the form module.path:function"),
])
def test_bad_callable_specs_are_one_value_error(spec, message):
    with pytest.raises(ValueError, match=message) as e:
        load_reward(spec)
    assert "\n" not in str(e.value)


def test_a_module_that_fails_to_import_is_named(tmp_path, monkeypatch):
    (tmp_path / "broken_reward_mod.py").write_text("raise RuntimeError('no GPU here')\n")
    (tmp_path / "needs_a_dep_mod.py").write_text("import rewardsds_no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="importing 'broken_reward_mod' failed with RuntimeError: no GPU here"):
        load_reward("broken_reward_mod:fn")
    with pytest.raises(ValueError, match="importing 'needs_a_dep_mod' failed with ModuleNotFoundError: "
                                         "No module named 'rewardsds_no_such_dependency_xyz'"):
        load_reward("needs_a_dep_mod:fn")


def test_good_callable_specs():
    assert isinstance(load_reward("test_reward_specs:Brightness"), Brightness)  # a Reward class, built
    r = load_reward("test_reward_specs:returns_column")
    assert isinstance(r, CallableReward) and r.name == "test_reward_specs:returns_column"
    torch.testing.assert_close(r(IMAGES, PROMPTS), IMAGES.mean((1, 2, 3)))  # [B, 1] is accepted
    out = load_reward("test_reward_specs:returns_numpy")(IMAGES, PROMPTS)
    assert out.dtype == torch.float32 and out.shape == (4,)
    torch.testing.assert_close(load_reward("test_reward_specs:returns_list")(IMAGES, PROMPTS), torch.full((4,), 12.0))
    assert isinstance(load_reward("builtins:max"), CallableReward)  # no signature to check: checked when called


@pytest.mark.parametrize("fn, message", [
    ("returns_int", r"reward 'test_reward_specs:returns_int' returned an int, expected a tensor of 4 scores$"),
    ("returns_none", "returned a NoneType, expected a tensor of 4 scores"),
    ("returns_matrix", r"returned scores of shape \(2, 2\), expected a tensor of 4 scores \(shape \[4\]\)"),
    ("returns_strings", "returned a list that is not a list of numbers"),
    ("returns_complex", "returned complex scores"),
    ("returns_two_nans", r"returned non-finite scores \(NaN or inf\) for 2 of 4 candidates"),
    ("fails_inside", r"failed when called as f\(images, prompts\): TypeError"),
])
def test_bad_scores_are_one_value_error_naming_the_reward(fn, message):
    r = load_reward(f"test_reward_specs:{fn}")
    with pytest.raises(ValueError, match=message) as e:
        r(IMAGES, PROMPTS)
    assert f"'test_reward_specs:{fn}'" in str(e.value)


def test_one_image_needs_one_score_not_a_scalar():
    with pytest.raises(ValueError, match=r"returned scores of shape \(\), expected a tensor of 1 score "):
        CallableReward(lambda images, prompts: images.mean(), name="scalar")(IMAGES[:1], PROMPTS[:1])


def test_a_mix_names_the_term_that_failed():
    mix = MixReward([Brightness(), load_reward("test_reward_specs:returns_two_nans")], [1.0, 0.5])
    with pytest.raises(ValueError, match="reward 'test_reward_specs:returns_two_nans' returned non-finite"):
        mix(IMAGES, PROMPTS)
    mix = load_reward("0.5*test_reward_specs:Brightness+test_reward_specs:returns_int")
    with pytest.raises(ValueError, match="'test_reward_specs:returns_int' returned an int"):
        mix(IMAGES, PROMPTS)
