"""One loop, one checkpoint: a run stopped and resumed equals the uninterrupted run, in 2D and 3D, for
SDS, RewardSDS and VSD (whose particle model has its own optimiser and generator); checkpoints never
unpickle; another run's checkpoint is refused; Ctrl-C checkpoints before it stops."""

import json
import os
import signal

import pytest
import torch

from rewardsds.checkpoints import CHECKPOINT_NAME, CheckpointError, load_state, save_state
from rewardsds.gen3d import Gen3DConfig, train
from rewardsds.loop import Interrupted, LoopConfig, run
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.render import CameraRanges
from rewardsds.representations.field import FieldConfig
from rewardsds.representations.image import init_image
from rewardsds.rewards import CallableReward

PROMPT = "a red ball"
REDNESS = CallableReward(lambda im, _: im[:, 0].mean((1, 2)) - im[:, 1:].mean((1, 2, 3)), "redness")


def _prior(size=8):
    return GaussianPrior({PROMPT: (0.9, 0.1, 0.1)}, size=size)


def _guidance(method, prior):
    return build_guidance(GuidanceConfig(method=method, cfg=5.0, preview_cfg=1.0, n_noises=3), prior,
                          REDNESS if method.startswith("reward-") else None, generator_seed=7)


def _run2d(method, out, steps, resume=False, on_step=None, run_id=None):
    prior = _prior()
    gen = torch.Generator().manual_seed(1)
    x0 = init_image(prior, "noise", 1, gen)
    cfg = LoopConfig(steps=steps, lr=0.05, frame_every=2, checkpoint_every=2)
    res = run(_guidance(method, prior), [PROMPT], x0, cfg, gen if not resume else torch.Generator().manual_seed(99),
              out_dir=out, resume=resume, progress=False, on_step=on_step, run_id=run_id)
    return res.x0, res


def _run3d(method, out, steps, resume=False, on_step=None, run_id=None):
    prior = _prior(16)
    cfg = Gen3DConfig(prompt=PROMPT, out=out, steps=steps, lr=0.05, cfg=5.0, views=2, render_resolutions=(16,),
                      n_samples=8, grid=FieldConfig(resolutions=(8,), features=2, hidden=8),
                      cameras=CameraRanges(elevation=(0, 30)), checkpoint_every=2, t_anneal_steps=6,
                      reward_steps=1.0, progress=False, method=method)
    gen = torch.Generator().manual_seed(1 if not resume else 99)
    res = train(cfg, _guidance(method, prior), gen, out_dir=out, resume=resume, progress=False, on_step=on_step,
                run_id=run_id)
    return torch.cat([p.detach().flatten() for p in res.field.parameters()]), res


RUNNERS = {"2d": _run2d, "3d": _run3d}


@pytest.mark.parametrize("kind", ["2d", "3d"])
@pytest.mark.parametrize("method", ["sds", "reward-sds", "vsd"])
def test_resumed_equals_uninterrupted(tmp_path, kind, method):
    go = RUNNERS[kind]
    want, full = go(method, tmp_path / "a", 6)
    go(method, tmp_path / "b", 4)  # "killed" after its step-4 checkpoint ...
    got, resumed = go(method, tmp_path / "b", 6, resume=True)  # ... and resumed (another seed: state wins)
    assert torch.allclose(want, got, atol=1e-6), (want - got).abs().max()
    assert resumed.prior_calls == full.prior_calls and resumed.skipped_steps == full.skipped_steps
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(6))
    a = [json.loads(ln) for ln in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    b = [json.loads(ln) for ln in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["t"] for r in a] == [r["t"] for r in b] and [r["rewards"] for r in a] == [r["rewards"] for r in b]


def test_crafted_pickle_checkpoint_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    out = tmp_path / "run"
    out.mkdir()
    torch.save({"x": Payload()}, out / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="pickle"):
        _run2d("sds", out, 4, resume=True)
    assert not marker.exists()


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    out = tmp_path / "run"
    _run2d("sds", out, 2)
    data = (out / CHECKPOINT_NAME).read_bytes()
    (out / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        _run2d("sds", out, 4, resume=True)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(out / CHECKPOINT_NAME))
    with pytest.raises(CheckpointError, match="not a rewardsds checkpoint"):
        _run2d("sds", out, 4, resume=True)


def test_state_round_trip_keeps_types(tmp_path):
    p = torch.nn.Parameter(torch.randn(2, 3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones_like(p)
    opt.step()
    state = {"opt": opt.state_dict(), "t": (1, 2.5, "x"), "none": None, "gen": torch.Generator().get_state()}
    save_state(tmp_path / "s.safetensors", state, meta={"k": [1, 2]})
    got, meta = load_state(tmp_path / "s.safetensors")
    assert meta == {"k": [1, 2]} and got["t"] == (1, 2.5, "x") and got["none"] is None
    assert torch.equal(got["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert got["opt"]["param_groups"][0]["betas"] == (0.9, 0.999)


def test_resuming_another_runs_checkpoint_is_refused(tmp_path):
    out = tmp_path / "run"
    _run2d("sds", out, 2, run_id={"prompt": "a red ball", "n_noises": 4})
    with pytest.raises(CheckpointError, match="another run.*n_noises"):
        _run2d("sds", out, 4, resume=True, run_id={"prompt": "a red ball", "n_noises": 8})


def test_resume_without_checkpoint_starts_clean_log(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").write_text('{"step": 0}\n{"step": 1}\n{"st')  # an attempt killed before any checkpoint
    _run2d("sds", out, 3, resume=True)
    steps = [json.loads(ln)["step"] for ln in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_sigint_checkpoints_then_resume_is_exact(tmp_path, kind):
    go = RUNNERS[kind]
    want, _ = go("reward-sds", tmp_path / "a", 6)

    def interrupt(rec):
        if rec["step"] == 2:  # mid-interval (checkpoints every 2): the stop itself must checkpoint step 3
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as info:
        go("reward-sds", tmp_path / "b", 6, on_step=interrupt)
    assert info.value.step == 3 and info.value.checkpoint is not None
    assert load_state(tmp_path / "b" / CHECKPOINT_NAME)[0]["step"] == 3
    got, _ = go("reward-sds", tmp_path / "b", 6, resume=True)
    assert torch.allclose(want, got, atol=1e-6)
