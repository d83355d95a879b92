"""Writing what a person looks at: PNG images, MP4 videos (GIF when ffmpeg is missing), JSON.

Every writer goes through a temporary file in the same folder and `os.replace`, so a killed run
never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def to_uint8(images: torch.Tensor, upscale: int = 1) -> np.ndarray:
    """[B,3,H,W] or [3,H,W] in [0,1] -> uint8 [B,H*u,W*u,3] (nearest upscaling keeps pixels crisp)."""
    x = images.detach().float().cpu().clamp(0, 1)
    x = x[None] if x.dim() == 3 else x
    if upscale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=upscale, mode="nearest")
    return (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 [B,H,W,3] -> one uint8 image with the B tiles in a grid on white."""
    b, h, w, _ = images.shape
    cols = cols or b
    rows = -(-b // cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = im
    return out


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    return _atomic(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def save_json(path: Path, obj) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=str)
            f.write("\n")

    return _atomic(path, write)


def save_video(path: Path, frames: np.ndarray, fps: int = 12) -> Path:
    """uint8 [T,H,W,3] -> MP4 via imageio-ffmpeg; falls back to a GIF (path.with_suffix('.gif'))."""
    import imageio.v3 as iio

    frames = np.asarray(frames)
    if frames.shape[1] % 2 or frames.shape[2] % 2:  # H.264 wants even sizes
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)), mode="edge")
    try:
        import imageio_ffmpeg  # noqa: F401

        return _atomic(Path(path).with_suffix(".mp4"),
                       lambda tmp: iio.imwrite(tmp, frames, fps=fps, codec="libx264", macro_block_size=1,
                                               extension=".mp4"))
    except ImportError:
        return _atomic(Path(path).with_suffix(".gif"),
                       lambda tmp: iio.imwrite(tmp, frames, duration=1000 / fps, loop=0, extension=".gif"))
