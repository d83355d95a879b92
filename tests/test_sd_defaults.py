"""Stable Diffusion's defaults made right (paper App. B, the DDS reference, RewardSDS' official VSD):
the reward a prior family uses when --reward is not given, the editing learning rate, DDS's w(t) = 1 and
t in [50, 950], and VSD's particle model (LoRA rank 4, lr 3e-4, no weight decay) - while the world's
defaults, and so the sweep's run hashes of world runs, stay as they were."""

import importlib.util
import json

import pytest
import torch

from rewardsds.cli import main
from rewardsds.config import (
    EditConfig,
    GenerateConfig,
    guidance_config,
    loop_config,
    resolve,
    run_id,
)
from rewardsds.defaults import SD_DEFAULTS, WORLD_DEFAULTS, prior_defaults, reward_notes
from rewardsds.losses import GuidanceConfig, build_guidance
from rewardsds.priors.analytic import GaussianPrior
from rewardsds.sweep.runner import canonical_config
from rewardsds.sweep.store import config_hash
from rewardsds.vsd import ParticleScore

P = "a red circle"
REDNESS = "tests.helpers.rewards:redness"
HAS_PEFT = importlib.util.find_spec("peft") is not None
_real_find_spec = importlib.util.find_spec


@pytest.fixture
def packages(monkeypatch):
    """packages(ImageReward=False, peft=True): pretend these optional packages are (not) installed."""

    def pretend(**installed):
        def find_spec(name, *args, **kwargs):
            if name in installed:
                return _real_find_spec("json") if installed[name] else None  # any spec will do
            return _real_find_spec(name, *args, **kwargs)

        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    return pretend


@pytest.fixture
def any_reward(monkeypatch):
    """Every reward spec loads as the redness reward (the real ones need hub weights); records the specs."""
    from rewardsds.rewards import CallableReward

    loaded = []

    def load(spec, device):
        loaded.append(spec)
        return CallableReward(lambda im, _: im[:, 0].mean((1, 2)) - im[:, 1:].mean((1, 2, 3)), name=spec)

    monkeypatch.setattr("rewardsds.commands.common.load_reward_model", load)
    return loaded


# --- A1: the default reward per prior family ---------------------------------------------------------------

def test_world_prior_defaults_to_the_world_clip(tiny_sd_dir):
    assert resolve(GenerateConfig(prompt=P)).reward == "world-clip"
    assert reward_notes("world", None) == []


@pytest.mark.parametrize("installed,want", [(True, "imagereward"), (False, "clip")])
def test_stable_diffusion_defaults_to_imagereward_else_clip(tiny_sd_dir, packages, installed, want):
    packages(ImageReward=installed)
    for prior in ("sd21", "sd15", str(tiny_sd_dir)):
        assert resolve(GenerateConfig(prompt=P, prior=prior)).reward == want
    notes = reward_notes("sd21", None)
    if installed:
        assert notes == []
    else:
        assert notes == ["reward: clip (imagereward is not installed: pip install 'rewardsds[imagereward]')"]
    assert resolve(GenerateConfig(prompt=P, prior="sd21", reward="pickscore")).reward == "pickscore"


def test_default_reward_is_resolved_into_config_json_and_announced(tmp_path, tiny_sd_dir, packages, any_reward,
                                                                   capsys):
    packages(ImageReward=False)
    out = tmp_path / "run"
    code = main(["generate", P, "--prior", str(tiny_sd_dir), "--steps", "2", "--n-noises", "2", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert any_reward == ["clip"]
    assert json.loads((out / "config.json").read_text())["reward"] == "clip"
    assert "reward: clip (imagereward is not installed: pip install 'rewardsds[imagereward]')" in err.splitlines()


@pytest.mark.parametrize("spec,warns", [("world-clip", True), ("0.5*world-aesthetic+0.5*clip", True),
                                        ("world-aesthetic@/some/folder", True), ("clip", False),
                                        ("clip@/data/world-clip/model", False), (REDNESS, False)])
def test_world_reward_on_another_prior_is_a_warning(spec, warns):
    notes = reward_notes("sd21", spec)
    assert bool(notes) == warns
    if warns:
        assert notes[0].startswith("warning:") and "world" in notes[0]
    assert reward_notes("world", spec) == []


def test_world_reward_on_stable_diffusion_runs_with_a_warning(tmp_path, tiny_sd_dir, any_reward, capsys):
    code = main(["generate", P, "--prior", str(tiny_sd_dir), "--reward", "world-clip", "--steps", "2",
                 "--n-noises", "2", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert any(ln.startswith("warning: --reward world-clip") for ln in err.splitlines()), err


# Hashes of world runs computed before the per-family defaults existed: a finished sweep must not rerun
# (with the options spelled out that held then: the defaults changed twice since, on purpose).
PINNED = {
    ('sds', None): '4f9c23dc317fc492bc3a6331f711e50e1994c4137326c4b2f1b72e115a9f7621',
    ('reward-sds', None): 'c0192ca490502be05e2664551ea0b8b632d152bbf5b2fa7eaaf22842a8720f08',
    ('reward-sds', 'world-aesthetic'): 'a38c25099be60b85eb9acaa368b22ea0f8575f21d543fafc9ee1ed6add9ebf91',
    ('vsd', None): 'dd773243d4ece9984c8e914806b38e3061933ae258ab18c5c530770e06b2ee9a',
    ('reward-vsd', None): '1d6604c0c294025749527f537707d133fba37cb4e5ed8b923418542897fb47cb',
    ('reward-bridge', None): '9eb98b4651720f0e56111414be7540da3f9dcd570297d73c720616fee8766816',
}


def test_world_run_hashes_are_unchanged():
    """Earlier runs keep their hashes; the one deliberate change since is the default weight scale (group): a
    reward-* run with the earlier scale (--weight-scale each) is the earlier run, the default is a new one."""
    def h(m, r, **kw):
        return config_hash(canonical_config(GenerateConfig(prompt="a red circle", method=m, reward=r, **kw)))

    def before(m):  # the world's SDS family since: CFG 7.5 from the best of 4 prior samples (issue 11)
        return {"cfg": 20.0, "init_samples": 0} if m.removeprefix("reward-") == "sds" else {}

    got = {(m, r): h(m, r, weight_scale="each", **before(m)) for m, r in PINNED}
    assert got == PINNED
    for m, r in PINNED:
        assert (h(m, r, **before(m)) == PINNED[(m, r)]) == (not m.startswith("reward-")), (m, r)
        assert (h(m, r, weight_scale="each") == PINNED[(m, r)]) == (not before(m)), (m, r)
    # the default reward of the world is the explicit world-clip, field for field
    assert canonical_config(GenerateConfig(prompt=P, method="reward-sds")) == canonical_config(
        GenerateConfig(prompt=P, method="reward-sds", reward="world-clip"))



def test_checkpoints_of_earlier_world_runs_still_resume(tiny_sd_dir, packages):
    """A checkpoint's run id is its resolved config: options added since, at the value the code used
    implicitly before, are left out of it (so the run ids of earlier world runs match); other values count."""
    packages(peft=True)
    new = {"time_weighting", "vsd_lora_rank", "vsd_lr"}
    for method in ("sds", "reward-vsd"):
        assert not new & set(run_id(resolve(GenerateConfig(prompt=P, method=method))))
    sd = run_id(resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="reward-vsd")))
    assert sd["vsd_lora_rank"] == 4 and "vsd_lr" not in sd
    assert "vsd_lora_rank" not in run_id(resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="sds")))


# --- A2: editing on Stable Diffusion -------------------------------------------------------------------------

def test_dds_on_stable_diffusion_uses_adam_lr_001_constant_weight_and_t_50_950(tmp_path, tiny_sd_dir):
    for method in ("dds", "reward-dds"):
        cfg = resolve(EditConfig(image=tmp_path / "x.png", source="a", target="b", prior=str(tiny_sd_dir),
                                 method=method))
        assert (cfg.lr, cfg.steps, cfg.t_min, cfg.t_max, cfg.time_weighting) == (0.01, 200, 0.05, 0.95, "constant")
        assert guidance_config(cfg).time_weighting == "constant"
        sched = loop_config(cfg).schedule(1000)
        assert (int(sched.t_min * 1000), int(sched.t_max * 1000)) == (50, 950)
    text = resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="sds"))
    assert (text.t_min, text.t_max, text.time_weighting) == (0.02, 0.98, "sds")
    assert SD_DEFAULTS.edit_lr == SD_DEFAULTS.lr == 0.01


def test_world_editing_keeps_its_defaults(tmp_path):
    cfg = resolve(EditConfig(image=tmp_path / "x.png", source="a", target="b", method="reward-dds"))
    assert (cfg.lr, cfg.steps, cfg.t_min, cfg.t_max, cfg.time_weighting) == (0.02, 300, 0.02, 0.98, "sds")
    assert prior_defaults("world", "dds")["lr"] == WORLD_DEFAULTS.edit_lr == 0.02


def test_flags_override_the_edit_defaults(tmp_path, tiny_sd_dir):
    cfg = resolve(EditConfig(image=tmp_path / "x.png", source="a", target="b", prior=str(tiny_sd_dir),
                             t_min=0.1, lr=0.05, time_weighting="sds"))
    assert (cfg.t_min, cfg.t_max, cfg.lr, cfg.time_weighting) == (0.1, 0.95, 0.05, "sds")


def test_constant_time_weighting_drops_one_minus_alpha_bar():
    prior = GaussianPrior({"a red ball": (0.9, 0.1, 0.1), "a blue ball": (0.1, 0.1, 0.9)})
    src = torch.zeros(1, 3, 8, 8)
    x0 = torch.full((1, 3, 8, 8), 0.2)
    grads = {}
    for w in ("sds", "constant"):
        g = build_guidance(GuidanceConfig(method="dds", cfg=5.0, time_weighting=w), prior, source=src,
                           source_prompts=["a red ball"])
        grads[w] = g(x0, ["a blue ball"], 300, generator=torch.Generator().manual_seed(0)).grad
    a = prior.alphas_cumprod[300]
    assert grads["constant"].abs().sum() > 0
    assert torch.allclose(grads["sds"], (1 - a) * grads["constant"], atol=1e-6)
    with pytest.raises(ValueError, match="time_weighting"):
        GuidanceConfig(time_weighting="snr")


# --- A3: VSD's particle model ----------------------------------------------------------------------------------

def test_vsd_particle_defaults_per_family(tiny_sd_dir, packages):
    packages(peft=True)
    sd = resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="reward-vsd"))
    assert (sd.vsd_lora_rank, sd.vsd_lr) == (4, 3e-4)
    g = guidance_config(sd)
    assert (g.vsd_lora_rank, g.vsd_lr) == (4, 3e-4)
    world = resolve(GenerateConfig(prompt=P, method="reward-vsd"))
    assert (world.vsd_lora_rank, world.vsd_lr) == (0, 3e-4)
    mine = resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="vsd", vsd_lora_rank=0, vsd_lr=1e-3))
    assert (guidance_config(mine).vsd_lora_rank, guidance_config(mine).vsd_lr) == (0, 1e-3)


def test_lora_default_without_peft_is_one_clear_error(tmp_path, tiny_sd_dir, packages, capsys):
    packages(peft=False)
    with pytest.raises(ValueError, match=r"pip install 'rewardsds\[lora\]'.*--vsd-lora-rank 0"):
        resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="vsd"))
    resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="vsd", vsd_lora_rank=0))  # a full copy
    resolve(GenerateConfig(prompt=P, prior=str(tiny_sd_dir), method="sds"))  # only VSD needs peft
    out = tmp_path / "run"
    code = main(["generate", P, "--prior", str(tiny_sd_dir), "--method", "vsd", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "rewardsds[lora]" in err, err
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [(["--vsd-lora-rank", "-1"], "vsd-lora-rank"),
                                         (["--vsd-lora-rank", "257"], "vsd-lora-rank"),
                                         (["--vsd-lr", "0"], "vsd-lr"), (["--vsd-lr", "nan"], "vsd-lr"),
                                         (["--vsd-lr", "inf"], "vsd-lr"), (["--vsd-lr", "-1e-3"], "vsd-lr"),
                                         (["--time-weighting", "snr"], "time-weighting")])
def test_bad_vsd_options_are_refused(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    code = main(["generate", P, "--method", "vsd", "--out", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not out.exists()


def test_vsd_flags_reach_the_run(tmp_path, tiny_pixel_dir):
    out = tmp_path / "run"
    code = main(["generate", P, "--prior", str(tiny_pixel_dir), "--method", "reward-vsd", "--reward", REDNESS,
                 "--vsd-lora-rank", "0", "--vsd-lr", "1e-3", "--steps", "2", "--n-noises", "2", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["vsd_lora_rank"], cfg["vsd_lr"]) == (0, 1e-3)


def test_particle_model_has_no_weight_decay():
    particle = ParticleScore(GaussianPrior({"a": (0.5, 0.5, 0.5)}), lr=1e-3)
    assert all(g["weight_decay"] == 0 and g["lr"] == 1e-3 for g in particle.opt.param_groups)


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed (pip install 'rewardsds[lora]')")
def test_lora_particle_starts_at_the_prior_and_trains_only_the_lora(tiny_sd_dir):
    from rewardsds.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    particle = ParticleScore(prior, lora_rank=4, seed=3)
    trained = particle.trained
    assert trained and all("lora" in n for n in trained)
    assert any("attn1" in n for n in trained) and any("attn2" in n for n in trained)  # self- and cross-attention
    layers = ("to_q", "to_k", "to_v", "to_out.0")
    assert {m for m in layers if any(f".{m}.lora_" in n for n in trained)} == set(layers)
    emb = prior.embed([P])
    x_t = torch.randn(1, *prior.sample_shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(particle.predict(x_t, 500, emb), prior.predict_eps(x_t, torch.tensor(500), emb).cond,
                          atol=1e-5)  # LoRA's B starts at zero
    frozen = {n: p.clone() for n, p in particle.net.named_parameters() if n not in trained}
    before = {n: p.clone() for n, p in particle.net.named_parameters() if n in trained}
    for _ in range(2):
        particle.train_step(torch.randn(1, *prior.sample_shape), emb)
    after = dict(particle.net.named_parameters())
    assert all(torch.equal(after[n], p) for n, p in frozen.items())
    assert any(not torch.equal(after[n], p) for n, p in before.items())
    assert set(particle.state_dict()["net"]) == trained  # checkpoints hold the LoRA only


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed (pip install 'rewardsds[lora]')")
def test_lora_particle_shares_the_priors_unet_and_leaves_its_calls_pretrained(tiny_sd_dir):
    """No copy of the U-Net (3.2 GiB at SD-2.1 size): the LoRA sits on the prior's own U-Net and is on only
    in eps_phi's calls; a second run on the same (kept-loaded) prior starts a fresh LoRA."""
    from rewardsds.priors.diffusers_prior import DiffusersPrior

    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    emb = prior.embed([P])
    x_t = torch.randn(1, *prior.sample_shape, generator=torch.Generator().manual_seed(0))
    before = prior.predict_eps(x_t, torch.tensor(500), emb).cond
    particle = ParticleScore(prior, lora_rank=4, seed=3, lr=1e-2)
    assert particle.net is prior.unet
    assert sum(p.numel() for p in particle.opt.param_groups[0]["params"]) < 0.5 * sum(
        p.numel() for p in prior.unet.parameters())
    for _ in range(3):
        particle.train_step(torch.randn(1, *prior.sample_shape), emb)
    assert torch.equal(prior.predict_eps(x_t, torch.tensor(500), emb).cond, before)  # the prior is untouched
    assert not torch.allclose(particle.predict(x_t, 500, emb), before, atol=1e-5)  # eps_phi has learned
    again = ParticleScore(prior, lora_rank=4, seed=3)
    assert torch.allclose(again.predict(x_t, 500, emb), before, atol=1e-5)  # a fresh LoRA, B = 0
