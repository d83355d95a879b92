"""Loading reward models: optional packages through `_compat.require`, and hub-id rewards that fail in
seconds, saying "offline", when their weights are neither local nor cached nor downloadable."""

from __future__ import annotations

import sys
import time
import types

import pytest
import torch

from rewardsds import _compat


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return tmp_path


# --- _compat.require ----------------------------------------------------------------------------------

def test_require_returns_the_module():
    assert _compat.require("json", "unused", "a test") is sys.modules["json"]


def test_require_names_the_extra_when_the_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ModuleNotFoundError
    with pytest.raises(ImportError, match=r"^VSD's LoRA needs the optional package 'peft': "
                                          r"pip install 'rewardsds\[lora\]'$"):
        _compat.require("peft", "lora", "VSD's LoRA")
    with pytest.raises(ImportError, match=r"pip install 'rewardsds\[mesh\]'"):
        _compat.require("rewardsds_no_such_package_xyz.sub", "mesh", "mesh export")


def test_require_tells_a_broken_install_from_a_missing_one(tmp_path, monkeypatch):
    (tmp_path / "half_installed_pkg.py").write_text("import rewardsds_no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="installed but failed to import .*rewardsds_no_such_dependency_xyz"):
        _compat.require("half_installed_pkg", "app", "the web app")


# --- hub-id rewards offline -----------------------------------------------------------------------------

@pytest.mark.parametrize("load", ["clip", "pickscore", "aesthetic"])
def test_uncached_hub_reward_offline_fails_fast(offline_empty_cache, load):
    from rewardsds.rewards.aesthetic import AestheticReward
    from rewardsds.rewards.clip_score import CLIPScoreReward, PickScoreReward

    head = offline_empty_cache / "head.pth"
    torch.save({"weight": torch.ones(1, 4), "bias": torch.zeros(1)}, head)
    call = {"clip": lambda: CLIPScoreReward.from_pretrained(),
            "pickscore": lambda: PickScoreReward.from_pretrained(),
            "aesthetic": lambda: AestheticReward.from_pretrained(head_path=head)}[load]
    start = time.monotonic()
    with pytest.raises(OSError, match=r"not in the Hugging Face cache .*offline \(HF_HUB_OFFLINE is set\)") as e:
        call()
    assert time.monotonic() - start < 3
    assert isinstance(e.value, _compat.WeightsUnavailableError) and "\n" not in str(e.value)
    repo = {"clip": "openai/clip-vit-large-patch14", "pickscore": "yuvalkirstain/PickScore_v1",
            "aesthetic": "openai/clip-vit-large-patch14"}[load]
    assert f"hf download {repo}" in str(e.value)


def test_pickscore_processor_is_checked_too(offline_empty_cache, tmp_path):
    from rewardsds.rewards.clip_score import PickScoreReward

    with pytest.raises(OSError, match="pickscore tokenizer 'laion/CLIP-ViT-H-14-laion2B-s32B-b79K'"):
        PickScoreReward.from_pretrained(tmp_path)  # the model is a local folder; its processor is a hub id


def test_hpsv2_download_offline_fails_fast(offline_empty_cache, monkeypatch):
    from rewardsds.rewards.hps import HPSv2Reward

    monkeypatch.setitem(sys.modules, "open_clip", types.SimpleNamespace())
    start = time.monotonic()
    with pytest.raises(OSError, match=r"HPSv2.1 checkpoint 'xswu/HPSv2' is not a local folder.*offline"):
        HPSv2Reward.from_pretrained()
    assert time.monotonic() - start < 3
    with pytest.raises(FileNotFoundError, match="HPS checkpoint '/no/such/HPS_v2.pt' is not a file"):
        HPSv2Reward.from_pretrained("/no/such/HPS_v2.pt")


def test_factory_reward_with_a_missing_path_or_head(offline_empty_cache):
    from rewardsds.rewards.factory import load_reward

    with pytest.raises(OSError, match="no such path"):
        load_reward("clip@/no/such/clip-folder")
    with pytest.raises(FileNotFoundError, match="aesthetic head '/no/such/head.pth' is not a file"):
        load_reward("aesthetic@/no/such/head.pth")
