"""--preview-decoder: an AutoencoderTiny (TAESD-style) decodes the candidates' previews for the reward instead of
the prior's VAE; the final image, gradients and plain methods are untouched; bad decoders are one clear error."""

import json

import pytest
import torch

from rewardsds.cli import main
from rewardsds.priors.diffusers_prior import DiffusersPrior
from rewardsds.priors.preview_decoder import PreviewDecoder, load_preview_decoder

REDNESS = "tests.helpers.rewards:redness"


def build_tiny_taesd(path, latent_channels: int = 4):
    """A random AutoencoderTiny that upsamples 2x, like the tiny SD's VAE (8 -> 16 px)."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1),
                    latent_channels=latent_channels).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def taesd_dir(tmp_path_factory):
    return build_tiny_taesd(tmp_path_factory.mktemp("taesd"))


def test_loads_through_from_pretrained_and_decodes_in_chunks(tiny_sd_dir, taesd_dir):
    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    dec = load_preview_decoder(taesd_dir, prior)
    assert isinstance(dec, PreviewDecoder)
    z = torch.randn(5, *prior.sample_shape)
    img = dec(z)
    assert img.shape == prior.decode(z).shape and 0 <= float(img.min()) and float(img.max()) <= 1
    dec.chunk = 2  # 3 chunks of the 5 latents: the same images as one batch
    assert torch.allclose(dec(z), img, atol=1e-6)
    assert not torch.allclose(img, prior.decode(z))  # really another decoder


def test_the_reward_sees_the_tiny_decoders_previews(tiny_sd_dir, taesd_dir):
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.rewards import CallableReward

    prior = DiffusersPrior.from_pretrained(tiny_sd_dir)
    dec = load_preview_decoder(taesd_dir, prior)
    seen = []

    def reward(images, prompts):
        seen.append(images)
        return images[:, 0].mean((1, 2))

    g = build_guidance(GuidanceConfig(method="reward-sds", n_noises=4), prior, CallableReward(reward),
                       preview_decoder=dec)
    x0 = torch.zeros(1, *prior.sample_shape)
    out = g(x0, ["a red circle"], 500, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.grad).all()
    ref = build_guidance(GuidanceConfig(method="reward-sds", n_noises=4), prior, CallableReward(reward))
    ref(x0, ["a red circle"], 500, generator=torch.Generator().manual_seed(0))
    # same candidates (same generator), decoded by the two decoders
    assert seen[0].shape == seen[1].shape and not torch.allclose(seen[0], seen[1])


def test_cli_generate_with_a_preview_decoder(tiny_sd_dir, taesd_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["generate", "a red circle", "--prior", str(tiny_sd_dir), "--reward", REDNESS, "--steps", "2",
                 "--preview-decoder", str(taesd_dir), "--out", str(out), "--no-progress", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preview_decoder"] == str(taesd_dir) and (out / "image.png").is_file()


@pytest.mark.parametrize("case", ["world", "missing", "channels"])
def test_bad_preview_decoders_are_one_line_errors(case, tiny_sd_dir, tiny_pixel_dir, taesd_dir, tmp_path, capsys):
    prior, decoder = str(tiny_sd_dir), str(taesd_dir)
    if case == "world":
        prior = str(tiny_pixel_dir)
    elif case == "missing":
        decoder = str(tmp_path / "nope")
    else:
        decoder = str(build_tiny_taesd(tmp_path / "taesd16", latent_channels=16))
    out = tmp_path / "run"
    code = main(["generate", "a red circle", "--prior", prior, "--reward", REDNESS, "--steps", "1",
                 "--preview-decoder", decoder, "--out", str(out), "--no-progress", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not out.exists()
    assert {"world": "no VAE", "missing": "no such path", "channels": "latent channels"}[case] in err
