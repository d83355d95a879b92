"""Where a prior's weights come from, decided in seconds (`_compat.check_weights`): a local folder with
Stable Diffusion's layout, the Hugging Face cache, or a reachable hub - never a half-minute retry loop."""

from __future__ import annotations

import shutil
import time

import pytest

from rewardsds import _compat
from rewardsds.priors.diffusers_prior import DiffusersPrior, PriorLoadError


@pytest.fixture
def no_probe_cache(monkeypatch):
    monkeypatch.setattr(_compat, "_probes", {})


def _fake_cache(root, repo_id, folder):
    """A Hugging Face cache (``models--org--name/{refs/main, snapshots/<sha>/..., .no_exist/<sha>/...}``)
    holding ``folder`` as an online load leaves it: transformers looked for ``tokenizer/config.json``,
    got a 404 and recorded it under ``.no_exist``."""
    sha = "0" * 40
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(folder, repo / "snapshots" / sha)
    (repo / ".no_exist" / sha / "tokenizer").mkdir(parents=True)
    (repo / ".no_exist" / sha / "tokenizer" / "config.json").touch()
    return root


@pytest.mark.parametrize("spec", ["sd21-typo/nothing", "stabilityai/stable-diffusion-2-1-base"])
def test_uncached_hub_id_offline_fails_fast_and_says_offline(monkeypatch, tmp_path, spec):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    start = time.monotonic()
    with pytest.raises(PriorLoadError, match="offline") as e:
        DiffusersPrior.from_pretrained(spec)
    assert time.monotonic() - start < 3
    msg = str(e.value)
    assert "not a local folder" in msg and "not in the Hugging Face cache" in msg and "HF_HUB_OFFLINE" in msg
    assert f"hf download {spec}" in msg


def test_unreachable_hub_is_reported_as_offline_without_the_env_flag(monkeypatch, tmp_path, no_probe_cache):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    # a local port with nothing listening: the probe is refused at once, as with no network
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    start = time.monotonic()
    with pytest.raises(PriorLoadError, match=r"unreachable \(offline\)"):
        DiffusersPrior.from_pretrained("sd21-typo/nothing")
    assert time.monotonic() - start < 3
    assert _compat._probes[("127.0.0.1", 9)][1] is False  # probed once, remembered


def test_probe_is_bounded_even_when_connecting_hangs(monkeypatch, no_probe_cache):
    import socket

    def hang(*args, **kwargs):
        time.sleep(30)
        raise OSError("hung up")  # what a connect that finally gives up raises

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    assert _compat.hub_reachable(timeout=0.2) is False
    assert time.monotonic() - start < 1


def test_cached_hub_id_loads_from_the_cache_when_offline(monkeypatch, tmp_path, tiny_sd_dir):
    import huggingface_hub.constants

    cache = _fake_cache(tmp_path, "someone/tiny-sd", tiny_sd_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert _compat.check_weights("someone/tiny-sd", "prior", "unet/config.json") is True
    prior = DiffusersPrior.from_pretrained("someone/tiny-sd")
    assert prior.vae is not None and prior.sample_shape == (4, 8, 8)


def test_cached_hub_id_with_unreachable_hub_loads_local_only(monkeypatch, tmp_path, tiny_sd_dir,
                                                             no_probe_cache):
    import huggingface_hub.constants

    cache = _fake_cache(tmp_path, "someone/tiny-sd", tiny_sd_dir)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(_compat, "hub_reachable", lambda timeout=2.0: False)
    assert _compat.check_weights("someone/tiny-sd", "prior", "unet/config.json") is True
    monkeypatch.setattr(_compat, "hub_reachable", lambda timeout=2.0: True)
    assert _compat.check_weights("someone/tiny-sd", "prior", "unet/config.json") is False
    assert _compat.check_weights("someone/tiny-sd", "prior", "unet/config.json", local_files_only=True) is True
    with pytest.raises(_compat.WeightsUnavailableError, match="local_files_only"):
        _compat.check_weights("someone/other", "prior", "unet/config.json", local_files_only=True)


def test_folder_without_unet_names_what_is_missing(tmp_path, tiny_sd_dir):
    shutil.copytree(tiny_sd_dir, tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "unet")
    with pytest.raises(PriorLoadError, match=r"not a diffusers prior folder: it has no unet/ and model_index\.json"):
        DiffusersPrior.from_pretrained(tmp_path / "p")
    with pytest.raises(PriorLoadError, match="it has no unet/, text_encoder/, tokenizer/, scheduler/"):
        DiffusersPrior.from_pretrained(tmp_path)  # some unrelated folder
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(PriorLoadError, match="is a file, not a diffusers folder"):
        DiffusersPrior.from_pretrained(tmp_path / "model.safetensors")


def test_a_missing_path_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(PriorLoadError, match="no such path"):
        DiffusersPrior.from_pretrained(tmp_path / "no" / "such" / "prior")
