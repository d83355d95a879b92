"""The 2D representation: an image in the prior's model space (SD latent 4x64x64, or world pixels
3x32x32 in [-1,1]), optimised directly as DreamFusion-2D / the RewardSDS paper do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ..errors import UserError
from ..priors.base import DiffusionPrior

MAX_IMAGE_BYTES = 50 * 2**20
MAX_IMAGE_PIXELS = 8192 * 8192


class InputImageError(UserError, ValueError):
    """An init/source image that cannot be used (missing, not an image, corrupt, too large)."""


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Read an image file -> [1,3,size,size] in [0,1] (RGB, centre-cropped square, bicubic resize)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputImageError(f"image {str(path)!r} does not exist")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise InputImageError(f"image {str(path)!r} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise InputImageError(f"image {str(path)!r} has {im.width}x{im.height} pixels; at most "
                                      f"{MAX_IMAGE_PIXELS} are accepted")
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputImageError(f"cannot read {str(path)!r} as an image: {e}") from e
    return data.view(size, size, 3).permute(2, 0, 1)[None].float() / 255


def init_image(prior: DiffusionPrior, kind: Literal["noise", "colour", "image"], batch: int,
               generator: torch.Generator, colour: tuple[float, float, float] = (0.94, 0.94, 0.92),
               image: torch.Tensor | None = None, noise_std: float = 1.0) -> torch.Tensor:
    """Initial x0 [batch, C, H, W] in model space. 'noise' is N(0, noise_std^2) in model space;
    'colour' and 'image' are encoded from pixels with the prior's encoder."""
    c, h, w = prior.sample_shape
    if kind == "noise":
        return torch.randn((batch, c, h, w), generator=generator) * noise_std
    with torch.no_grad():
        if kind == "colour":
            px = torch.tensor(colour, dtype=torch.float32).view(1, 3, 1, 1)
            px = px.expand(batch, 3, prior.image_size, prior.image_size)
        elif kind == "image":
            if image is None:
                raise ValueError("init 'image' needs an image")
            px = image.expand(batch, -1, -1, -1)
        else:
            raise ValueError(f"unknown init {kind!r}; expected noise, colour or image")
        return prior.encode(px.to(prior.device)).float().cpu()


class ImageParam(torch.nn.Module):
    def __init__(self, x0: torch.Tensor) -> None:
        super().__init__()
        self.x = torch.nn.Parameter(x0.clone())

    def forward(self) -> torch.Tensor:
        return self.x
