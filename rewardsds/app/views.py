"""What the page shows, drawn without gradio: a step's image from its model-space x0, the candidate
tiles (framed green for a positive weight, red for a negative one) and their captions, and the curves.

The curves are drawn here with PIL, not with gr.LinePlot: a LinePlot that streams from an empty value
(a run's first update) keeps the empty legend of that first value in gradio 6 and draws no line."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .. import media

# Stable Diffusion 1.x/2.x latents (scaled by the VAE's scaling factor) -> approximate RGB in [-1, 1]: a
# linear map, as live previews commonly use, so a step's image needs no VAE decode. The final image is
# the real decode (image.png).
SD_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
                              [-0.2120, -0.2616, -0.7177]])
POSITIVE, NEGATIVE, ZERO = (26, 152, 80), (215, 48, 39), (160, 160, 160)
SERIES_COLORS = ((76, 120, 168), (26, 152, 80), (217, 95, 2))


def model_to_rgb(x0: torch.Tensor) -> torch.Tensor:
    """Model-space images [B,C,H,W] -> [B,3,H,W] in [0, 1]: pixel priors store [-1, 1] RGB; 4-channel
    latents go through `SD_LATENT_RGB`."""
    x = x0.detach().float().cpu()
    if x.shape[1] == 4:
        x = torch.einsum("bchw,cr->brhw", x, SD_LATENT_RGB)
    elif x.shape[1] != 3:
        x = x[:, :3] if x.shape[1] > 3 else x[:, :1].expand(-1, 3, -1, -1)
    return ((x + 1) / 2).clamp(0, 1)


def upscale_factor(side: int, target: int) -> int:
    return max(1, target // max(1, side))


def show(images: torch.Tensor, target: int = 256, cols: int | None = None) -> np.ndarray:
    """[B,3,H,W] in [0, 1] -> one uint8 picture, small images upscaled (nearest) to about `target` px."""
    u = upscale_factor(images.shape[-1], target)
    return media.grid(media.to_uint8(images, u), cols=cols, pad=0 if images.shape[0] == 1 else 2)


def tile(image: np.ndarray, weight: float | None, target: int = 128, border: int = 6) -> np.ndarray:
    """One candidate preview (uint8 [H,W,3]) upscaled to about `target` px in a frame of its weight's sign."""
    im = Image.fromarray(image)
    side = max(im.size)
    if side < target:
        u = upscale_factor(side, target)
        im = im.resize((im.width * u, im.height * u), Image.NEAREST)
    elif side > 2 * target:
        im.thumbnail((2 * target, 2 * target))
    color = ZERO if not weight else POSITIVE if weight > 0 else NEGATIVE
    framed = Image.new("RGB", (im.width + 2 * border, im.height + 2 * border), color)
    framed.paste(im, (border, border))
    return np.asarray(framed)


def caption(reward: float | None, weight: float | None) -> str:
    r = "n/a" if reward is None else f"{reward:.4g}"
    w = "n/a" if weight is None else f"{weight:+.2f}"
    return f"r {r} · w {w}"


def placeholder(text: str, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    im = Image.new("RGB", size, (245, 245, 245))
    ImageDraw.Draw(im).text((10, size[1] // 2 - 6), text, fill=(90, 90, 90))
    return np.asarray(im)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font, one size
        return ImageFont.load_default()


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.2e}"


def plot(series: dict[str, list[tuple[float, float]]], title: str, x_max: float, size: tuple[int, int] = (420, 220)
         ) -> np.ndarray:
    """A line chart of `series` ({name: [(x, y), ...]}) on x in [0, x_max], y fitted to the data; uint8 [H,W,3]."""
    w, h = size
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    font, small = _font(14), _font(11)
    left, right, top, bottom = 52, 10, 26, 38
    d.text((left, 5), title, fill=(40, 40, 40), font=font)
    box = (left, top, w - right, h - bottom)
    d.rectangle(box, outline=(180, 180, 180))
    ys = [y for pts in series.values() for _, y in pts if np.isfinite(y)]
    x_max = max(float(x_max), 1.0)
    d.text((left, h - bottom + 3), "0", fill=(90, 90, 90), font=small)
    d.text((w - right - 30, h - bottom + 3), f"{x_max:g}", fill=(90, 90, 90), font=small)
    d.text(((left + w - right) // 2 - 12, h - bottom + 3), "step", fill=(90, 90, 90), font=small)
    if not ys:
        d.text((left + 10, (top + h - bottom) // 2 - 6), "no data yet", fill=(150, 150, 150), font=small)
        return np.asarray(im)
    lo, hi = min(ys), max(ys)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
    d.text((4, top - 2), _fmt(hi), fill=(90, 90, 90), font=small)
    d.text((4, h - bottom - 12), _fmt(lo), fill=(90, 90, 90), font=small)

    def at(x: float, y: float) -> tuple[float, float]:
        return (box[0] + (box[2] - box[0]) * x / x_max, box[3] - (box[3] - box[1]) * (y - lo) / (hi - lo))

    lx = left + 40
    for (name, pts), color in zip(series.items(), SERIES_COLORS):
        pts = [at(x, y) for x, y in pts if np.isfinite(y)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        elif pts:
            x, y = pts[0]
            d.ellipse((x - 2, y - 2, x + 2, y + 2), fill=color)
        d.line((lx, h - 12, lx + 16, h - 12), fill=color, width=3)
        d.text((lx + 20, h - 19), name, fill=(60, 60, 60), font=small)
        lx += 30 + int(d.textlength(name, font=small))
    return np.asarray(im)


def curves(history: list[tuple[int, float | None, float | None, float]], total: int) -> tuple[np.ndarray, np.ndarray]:
    """(reward chart: mean and best candidate per reward step, gradient-norm chart) of a run's steps."""
    reward = {"mean of N": [(s, m) for s, m, _, _ in history if m is not None],
              "best of N": [(s, b) for s, _, b, _ in history if b is not None]}
    grad = {"gradient norm": [(s, g) for s, _, _, g in history]}
    return plot(reward, "reward of the candidates", total), plot(grad, "gradient norm", total)
