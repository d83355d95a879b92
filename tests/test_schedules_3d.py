"""Timestep annealing: 2D keeps one range; gen3d follows the official 3D (MVDream) config, both bounds
0.98 -> [0.02, 0.50] over 80% of the run (threestudio's ``int(T * C(start, end, step))``)."""

import pytest
import torch

from rewardsds.config3d import Gen3DConfig, loop_config3d, resolve3d
from rewardsds.loop import LoopConfig
from rewardsds.schedules import TimestepSchedule


def threestudio_bounds(step: int, steps: int, lo: tuple[float, float], hi: tuple[float, float], T: int = 1000):
    """threestudio's C(): start + (end - start) * clamp(step / steps, 0, 1); bound = int(T * value)."""
    p = min(max(step / steps, 0.0), 1.0)
    return int(T * (lo[0] + (lo[1] - lo[0]) * p)), int(T * (hi[0] + (hi[1] - hi[0]) * p))


def test_2d_default_does_not_anneal():
    s = LoopConfig().schedule(1000)
    assert s.bounds(0) == s.bounds(10**6) == (20, 980) and not s.anneals
    assert TimestepSchedule().bounds(5) == (20, 980)


def test_mvdream_schedule_matches_the_closed_form():
    s = TimestepSchedule(0.98, 0.98, anneal_to=0.5, anneal_steps=8000, anneal_min_to=0.02)
    assert s.bounds(0) == (980, 980)
    assert s.bounds(4000) == (500, 740)
    assert s.bounds(8000) == s.bounds(10000) == (20, 500)
    for step in (1, 7, 100, 1234, 3999, 6001, 7999):
        assert s.bounds(step) == threestudio_bounds(step, 8000, (0.98, 0.02), (0.98, 0.5)), step
    g = torch.Generator().manual_seed(0)
    assert {s.sample(0, g) for _ in range(20)} == {980}
    late = [s.sample(9000, g) for _ in range(200)]
    assert min(late) >= 20 and max(late) <= 500


def test_upper_bound_only_annealing_is_unchanged():
    s = TimestepSchedule(0.02, 0.98, anneal_to=0.5, anneal_steps=100)
    assert s.bounds(0) == (20, 980) and s.bounds(50) == (20, 740) and s.bounds(100) == (20, 500)


def test_gen3d_defaults_follow_mvdream():
    for prior in ("world", "sd21"):
        cfg = resolve3d(Gen3DConfig(prompt="x", prior=prior))
        assert cfg.t_anneal_steps == round(0.8 * cfg.steps)
        s = loop_config3d(cfg).schedule(1000)
        assert s.bounds(0) == (980, 980), prior
        assert s.bounds(cfg.t_anneal_steps) == s.bounds(cfg.steps - 1) == (20, 500), prior
        mid = cfg.t_anneal_steps // 2
        assert s.bounds(mid) == threestudio_bounds(mid, cfg.t_anneal_steps, (0.98, 0.02), (0.98, 0.5))
    assert resolve3d(Gen3DConfig(prompt="x", steps=10)).t_anneal_steps == 8
    assert resolve3d(Gen3DConfig(prompt="x", steps=10, t_anneal_steps=3)).t_anneal_steps == 3


def test_schedule_checks():
    with pytest.raises(ValueError, match="t_min"):  # a fixed t is only allowed as an annealing start
        TimestepSchedule(0.5, 0.5)
    with pytest.raises(ValueError, match="t_min"):
        TimestepSchedule(0.98, 0.98, anneal_to=0.5, anneal_min_to=0.02, anneal_steps=0)
    with pytest.raises(ValueError, match="anneal_min_to"):
        TimestepSchedule(0.5, 0.98, anneal_min_to=0.6, anneal_steps=10)
    with pytest.raises(ValueError, match="anneal_to"):  # the end range would be empty
        TimestepSchedule(0.98, 0.98, anneal_to=0.5, anneal_steps=10)
    with pytest.raises(ValueError, match="anneal_to"):
        TimestepSchedule(0.02, 0.98, anneal_to=0.99, anneal_steps=10)
    with pytest.raises(ValueError, match="t_min"):
        LoopConfig(t_min=0.9, t_max=0.1)
    with pytest.raises(ValueError, match="anneal"):
        resolve3d(Gen3DConfig(prompt="x", t_min_anneal_to=0.6))
    with pytest.raises(ValueError, match="t_min"):  # gen3d's zero-width start needs its annealing
        resolve3d(Gen3DConfig(prompt="x", t_anneal_to=None, t_min_anneal_to=None))
