import os

import pytest
import torch
from _builders import build_tiny_prior, build_tiny_world3d

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(gpu)


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_prior(tmp_path_factory.mktemp("tiny_sd"), vae=True)


@pytest.fixture(scope="session")
def tiny_pixel_dir(tmp_path_factory):
    return build_tiny_prior(tmp_path_factory.mktemp("tiny_pixel"), vae=False, prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny3d(tmp_path_factory):
    """(3D CLIP folder, 3D prior folder), each trained for 2 steps at 16 px (`build_tiny_world3d`); read-only."""
    return build_tiny_world3d(tmp_path_factory.mktemp("tiny3d"))


@pytest.fixture()
def no_3d_weights(tmp_path, monkeypatch):
    """The 3D weights folder as it is before training, wherever the real one stands."""
    from rewardsds.world3d import paths as paths3d

    monkeypatch.setattr(paths3d, "weights_dir", lambda: tmp_path / "no-weights")
