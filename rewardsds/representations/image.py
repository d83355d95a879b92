"""The 2D representation: an image in the prior's model space (SD latent 4x64x64, or world pixels
3x32x32 in [-1,1]), optimised directly as DreamFusion-2D / the RewardSDS paper do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from ..errors import UserError
from ..priors.base import DiffusionPrior
from ..world.scenes import BACKGROUND

MAX_IMAGE_BYTES = 50 * 2**20
MAX_IMAGE_PIXELS = 8192 * 8192
# Transparent pixels of an input image are composited over this RGB colour in [0, 1] unless told
# otherwise; it is also the 'colour' init. It is the embedded world's backdrop (world.scenes).
DEFAULT_BACKGROUND: tuple[float, float, float] = BACKGROUND
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class InputImageError(UserError, ValueError):
    """An init/source image that cannot be used (missing, a folder, empty, not an image, corrupt,
    truncated, too large or a decompression bomb)."""


def load_image(path: str | Path, size: int,
               background: tuple[float, float, float] = DEFAULT_BACKGROUND) -> torch.Tensor:
    """Read an image file -> [1,3,size,size] in [0,1] (RGB, centre-cropped square, bicubic resize).

    The EXIF orientation is applied; 16-bit (and 32-bit integer / float) greyscale is scaled by its
    true bit depth; CMYK, palette, greyscale, YCbCr, LAB... are converted to RGB; transparent pixels
    (RGBA, LA, palette or greyscale/RGB with a transparent colour) are composited over `background`
    (RGB in [0,1]). Anything unusable raises InputImageError with one sentence saying why."""
    import struct
    import warnings
    import zlib

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    name = repr(str(path))
    if len(background) != 3:
        raise ValueError(f"background must be an RGB triple in [0,1], got {background!r}")
    if path.is_dir():
        raise InputImageError(f"image {name} is a folder, not an image file")
    if not path.exists():
        raise InputImageError(f"image {name} does not exist")
    if not path.is_file():
        raise InputImageError(f"image {name} is not a regular file")
    nbytes = path.stat().st_size
    if nbytes == 0:
        raise InputImageError(f"image {name} is an empty file (0 bytes)")
    if nbytes > MAX_IMAGE_BYTES:
        raise InputImageError(f"image {name} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            # PIL warns from ~89M pixels; our own limit below is lower, so the warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise InputImageError(f"image {name} has {im.width}x{im.height} pixels; at most "
                                      f"{MAX_IMAGE_PIXELS} are accepted")
            try:
                orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation
            except Exception:  # a damaged EXIF block must not make usable pixels unusable
                orientation = 1
            if orientation not in (None, 1):
                im = ImageOps.exif_transpose(im)
            s = min(im.size)
            if s == 0:
                raise InputImageError(f"image {name} has no pixels ({im.width}x{im.height})")
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s))
            return _image_to_tensor(im, size, background, name)
    except InputImageError:
        raise
    except Image.DecompressionBombError as e:
        raise InputImageError(f"cannot read {name} as an image: it has more pixels than can be decoded "
                              f"safely (at most {MAX_IMAGE_PIXELS} are accepted; possible decompression "
                              "bomb)") from e
    except UnidentifiedImageError as e:
        raise InputImageError(f"cannot read {name} as an image: it is not in an image format Pillow "
                              "recognises (or its header is damaged)") from e
    except PermissionError as e:
        raise InputImageError(f"cannot read {name} as an image: permission denied") from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        raise InputImageError(f"cannot read {name} as an image: the file is damaged or truncated "
                              f"({e})") from e


def _image_to_tensor(im, size: int, background: tuple[float, float, float], name: str) -> torch.Tensor:
    """A square PIL image (any mode) -> [1,3,size,size] in [0,1]; see load_image."""
    import numpy as np
    from PIL import Image

    trns = im.info.get("transparency")
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        raw = np.asarray(im)
        if im.mode == "F":  # float data: taken to be in [0,1]
            grey = np.nan_to_num(raw.astype(np.float32), nan=0.0)
        elif im.mode == "I" and (raw.min() < 0 or raw.max() > 65535):  # genuinely 32-bit
            grey = raw.astype(np.float64) / np.iinfo(np.int32).max
        else:  # 16-bit, also when it arrives in a 32-bit "I" container
            grey = raw.astype(np.float32) / 65535
        grey = np.clip(grey, 0, 1).astype(np.float32)
        alpha = (raw != trns).astype(np.float32) if isinstance(trns, int) and im.mode != "F" else None
        channels, scale = [grey], 1.0
    elif im.mode in _ALPHA_MODES or trns is not None:
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3].astype(np.float32) / 255
        channels, scale = [rgba[..., c] for c in range(3)], 1 / 255  # uint8 views: scaled one at a time
    else:  # opaque 8-bit (RGB, L, 1, P, CMYK, YCbCr, LAB, ...): the plain 8-bit path
        try:
            rgb = im.convert("RGB")
        except ValueError as e:
            raise InputImageError(f"cannot read {name} as an image: its colour mode {im.mode!r} cannot be "
                                  "converted to RGB") from e
        rgb = rgb.resize((size, size), Image.BICUBIC)
        data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        return data.view(size, size, 3).permute(2, 0, 1)[None].float() / 255

    def resized(x: np.ndarray) -> np.ndarray:
        f = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))  # mode "F"
        return np.asarray(f.resize((size, size), Image.BICUBIC))

    # Composite over the background after resizing premultiplied colour: resizing is linear with
    # weights summing to 1, so this equals resizing the composite, without a full-size float RGB copy.
    if alpha is not None:
        a = resized(alpha)
        out = [resized(channels[min(c, len(channels) - 1)] * (alpha * scale)) + float(background[c]) * (1 - a)
               for c in range(3)]
    else:
        out = [resized(ch * scale) for ch in channels] * (3 // len(channels))
    px = np.clip(np.stack(out), 0, 1).astype(np.float32)
    return torch.from_numpy(px)[None]


def init_image(prior: DiffusionPrior, kind: Literal["noise", "colour", "image"], batch: int,
               generator: torch.Generator, colour: tuple[float, float, float] = BACKGROUND,
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


class ImageRepresentation(torch.nn.Module):
    """An image (batch) in the prior's model space, optimised directly (DreamFusion-2D, the RewardSDS
    paper's 2D setting): each step's `Views` are the image itself and its prompts."""

    def __init__(self, x0: torch.Tensor, prompts: list[str], prior: DiffusionPrior) -> None:
        if len(prompts) != x0.shape[0]:
            raise ValueError(f"{x0.shape[0]} images but {len(prompts)} prompts")
        super().__init__()
        self.x = torch.nn.Parameter(x0.to(prior.device).clone())
        self.prompts = list(prompts)
        self.__dict__["prior"] = prior  # used, not owned: kept out of parameters and state_dict

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [self.x], "lr": lr}]

    def views(self, step: int, generator: torch.Generator):
        from .base import Views

        return Views(self.x, self.prompts)

    def after_step(self, step: int, optimizer: torch.optim.Optimizer) -> None:
        pass

    @torch.no_grad()
    def images(self) -> torch.Tensor:
        """The decoded images [B,3,H,W] in [0,1] (on the CPU)."""
        return self.prior.decode(self.x.detach()).float().cpu()

    def frame(self):
        from ..media import to_uint8

        return to_uint8(self.images(), upscale=1)
