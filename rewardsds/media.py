"""Writing what a person looks at: PNG images, MP4 videos (GIF when ffmpeg is missing), JSON.

Every writer goes through a temporary file in the same folder and `os.replace`, so a killed run
never leaves a half-written output that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
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


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that go by the extension pick
    the right format); on success it replaces `path`, on error it is removed. Every writer of the
    project goes through this one place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private (0600); an output gets the permissions any new file would
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def save_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)


def save_json(path: str | os.PathLike, obj) -> Path:
    return save_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def _write_mp4(frames: np.ndarray, path: Path, fps: int) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(str(path), format="FFMPEG", fps=fps, codec="libx264", quality=8,
                            macro_block_size=2, pixelformat="yuv420p") as writer:
        for f in frames:
            writer.append_data(f)


def _write_gif(frames: np.ndarray, path: Path, fps: int) -> None:
    from PIL import Image

    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=max(1, round(1000 / fps)),
                loop=0)


def save_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 12) -> Path:
    """uint8 frames [T,H,W,3] -> MP4 (imageio-ffmpeg) when `path` ends in .mp4, falling back to a GIF
    beside it when ffmpeg is missing or fails; any other suffix writes a GIF. Returns the path
    actually written."""
    frames = np.asarray(frames)
    # yuv420p needs even sides: pad by repeating the last row / column rather than rescaling
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path = Path(path)
    if path.suffix.lower() == ".mp4":
        try:
            with atomic_path(path) as tmp:
                _write_mp4(frames, tmp, fps)
            return path
        except (ImportError, OSError, RuntimeError):
            path = path.with_suffix(".gif")
    with atomic_path(path) as tmp:
        _write_gif(frames[:, :h, :w], tmp, fps)
    return path
