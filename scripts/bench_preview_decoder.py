"""Benchmark (not a test): what `--preview-decoder` saves at Stable Diffusion scale.

Decodes N = 4 candidate latents (64 x 64 x 4, SD-2.1-base) with the full VAE (AutoencoderKL, SD-2.1-base
config) and with a TAESD-shaped `AutoencoderTiny` (diffusers' default config, the shape of
madebyollin/taesd), both with random weights built from configuration and the tiny one loaded through
`load_preview_decoder` (the loader `--preview-decoder` calls). Prints CPU seconds per image of each (one
torch thread: the work done, hardly moved by other jobs) and what a default RewardSDS step (N = 4, S = 1)
would cost relative to SDS with the tiny decoder, from the unit costs `scripts/bench_scale.py` measured
(its --json file): U-Net + reward + rest as measured there, decodes replaced by the measured tiny decode.

    .venv/bin/python scripts/bench_preview_decoder.py --scale-json benchmarks/results/bench_scale/cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_scale import SD21_VAE  # noqa: E402  (the published VAE configuration)


def cpu_time(fn, repeats: int) -> float:
    """Best-of CPU seconds of fn() (process time: one thread's work)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4, help="candidates decoded together (default 4)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats, best kept (default 2)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale-json", type=Path, help="bench_scale.py --json output, for the projected step ratio")
    args = ap.parse_args(argv)

    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    from rewardsds.priors.preview_decoder import load_preview_decoder

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vae = AutoencoderKL(**SD21_VAE).eval().requires_grad_(False)
    z = torch.randn(args.n, 4, 64, 64)

    class Prior:  # what load_preview_decoder reads of a prior
        dtype, device, sample_shape = torch.float32, torch.device("cpu"), (4, 64, 64)

    Prior.vae = vae
    with tempfile.TemporaryDirectory() as tmp:
        AutoencoderTiny().save_pretrained(tmp)
        tiny = load_preview_decoder(tmp, Prior())
    tiny_params = sum(p.numel() for p in tiny.vae.decoder.parameters()) / 1e6
    full_params = sum(p.numel() for p in vae.decoder.parameters()) / 1e6
    with torch.no_grad():
        full = cpu_time(lambda: vae.decode(z / SD21_VAE["scaling_factor"]).sample, args.repeats) / args.n
        small = cpu_time(lambda: tiny(z), args.repeats) / args.n
        shape = tuple(tiny(z[:1]).shape)
    print(f"# torch {torch.__version__}, {args.threads} thread(s); N = {args.n} latents 4x64x64; CPU s per image, "
          f"best of {args.repeats}")
    print(f"full VAE decoder (AutoencoderKL, SD-2.1-base, {full_params:.1f}M)  {full:8.3f} s/image")
    print(f"tiny decoder (AutoencoderTiny, TAESD shape, {tiny_params:.2f}M)    {small:8.3f} s/image  "
          f"-> {shape[-1]} px; {full / small:.0f}x cheaper")
    if args.scale_json:
        d = json.loads(args.scale_json.read_text())
        c = d["unit_costs"]
        sds = next(r for r in d["engine"]["rows"] if r["name"] == "sds")["cpu_s_per_step"]
        n = 4
        unet = 8 * c["unet_s_per_sample"]
        with_vae = unet + n * (c["decode_s_per_image"] + c["reward_s_per_image"]) + c["rest_s"]
        with_tiny = unet + n * (small + c["reward_s_per_image"]) + c["rest_s"]
        print(f"default RewardSDS step (N=4, S=1), from {args.scale_json}'s unit costs: with the VAE "
              f"{with_vae:.1f} s = {with_vae / sds:.2f}x SDS ({sds:.1f} s); with the tiny decoder {with_tiny:.1f} s "
              f"= {with_tiny / sds:.2f}x SDS (ESTIMATED: measured units, not a measured step)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
