"""Full-size benchmark (not a test): seconds per step and peak memory of the 2D engine on Stable Diffusion
2.1-base shapes, built from configuration with random weights (nothing is downloaded).

It builds SD-2.1-base's U-Net (865M parameters), VAE, OpenCLIP-H text tower (transformers `CLIPTextModel`),
a CLIP byte-level tokenizer (77 tokens, no merges) and the PNDM scheduler config, saves them in diffusers'
layout (model_index.json ``StableDiffusionPipeline``), and CLIP ViT-L/14 plus a linear aesthetic head; then
loads them through the loaders users call (`DiffusersPrior.from_pretrained`, `load_reward("clip@DIR")`,
`AestheticReward.from_pretrained`) and prints, per method, seconds per step, U-Net calls and samples per
step and peak memory (RSS from /proc's VmHWM, reset before each measurement; CUDA max allocated with
--device cuda):

* SDS; RewardSDS default (N=4, S=1); paper-small (N=2, S=1, K=10%); paper-full (N=10, S=15, K=all):
  measured with --full-steps, otherwise EXTRAPOLATED as U-Net samples x measured seconds per sample (+
  decodes and reward images x their measured cost); RewardVSD with a rank-4 LoRA particle model;
* the official code's call pattern on the same models (2D: preview on the fixed S-step grid starting at the
  grid step <= t, then a separate U-Net pass at t on the kept candidates; 3D: per candidate, preview from t
  and a repeated pass at t), and our time over theirs at identical N, S, K;
* the targets (met / NOT met), and the wall time of ``rewardsds generate ... --method sds`` on the saved
  folder.

    .venv/bin/python scripts/bench_scale.py --threads 1 --vsd-n 2 --json benchmarks/results/bench_scale/cpu.json
    .venv/bin/python scripts/bench_scale.py --device cuda --full-steps --steps 3     # on a GPU
    .venv/bin/python scripts/bench_scale.py --tiny                                  # seconds (smoke test)

Each phase (build, engine, vsd, generate) runs in its own process unless --no-isolate (--tiny implies it),
so the weights one phase loads never count in another's peak. On a CPU the verdicts, ratios and
extrapolations use the process's CPU seconds (with one torch thread: the work done, which other jobs on a
shared machine hardly move); wall seconds are printed beside them. ``--report-from FILE.json`` prints the
report of an earlier ``--json`` again without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

PROMPT = "a photo of a corgi"
GIB = 1024**3

# --- published configurations (stabilityai/stable-diffusion-2-1-base, openai/clip-vit-large-patch14) -------------

SD21_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, act_fn="silu",
    norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, downsample_padding=1)
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, act_fn="silu",
    norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
SD21_TEXT = dict(  # OpenCLIP ViT-H/14's text tower as SD 2.x ships it (the last of 24 layers dropped)
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=512, bos_token_id=0,
    eos_token_id=2, pad_token_id=1)
SD21_SCHEDULER = dict(  # scheduler/scheduler_config.json of SD-2.1-base (PNDM; the prior reads it as DDIM)
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
    prediction_type="epsilon", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, clip_sample=False)
CLIP_L14 = dict(
    text_config=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     bos_token_id=512, eos_token_id=513, pad_token_id=513),  # the local tokenizer's ids
    vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                       patch_size=14, image_size=224, hidden_act="quick_gelu"),
    projection_dim=768)

# --tiny: the same classes and layout at toy sizes (seconds on a CPU)
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 32),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=32, attention_head_dim=8, use_linear_projection=True, norm_num_groups=8)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8), layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
    sample_size=16)
TINY_TEXT = dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=77, hidden_act="gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)
TINY_CLIP = dict(
    text_config=dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                     pad_token_id=513),
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       patch_size=8, image_size=16),
    projection_dim=16)

# presets compared (N, S); K: the fraction of steps that are reward steps
SETTINGS = {"default": (4, 1, 1.0), "paper-small": (2, 1, 0.1), "paper-full": (10, 15, 1.0)}
PARTS = ("paper-small", "official", "official-3d", "vsd", "aesthetic", "generate")


# --- building ------------------------------------------------------------------------------------------------------

def save_clip_tokenizer(path: Path, max_length: int = 77) -> None:
    """A CLIP tokenizer folder (vocab.json, merges.txt, tokenizer_config.json as SD's ``tokenizer/``): CLIP's
    byte-level BPE with no merges, so every byte is a token (514 tokens); prompts pad to ``max_length``."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": max_length, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))


def build_models(root: Path, tiny: bool) -> dict[str, str]:
    """Random-weight models saved under ``root``: ``sd21/`` (diffusers layout), ``clip/`` (CLIPModel +
    tokenizer + image processor) and ``aesthetic_head.safetensors`` (linear 768 -> 1). One model in memory
    at a time. Returns their paths."""
    import torch
    import transformers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    prior, clip = root / "sd21", root / "clip"
    for name, build in (("unet", lambda: UNet2DConditionModel(**(TINY_UNET if tiny else SD21_UNET))),
                        ("vae", lambda: AutoencoderKL(**(TINY_VAE if tiny else SD21_VAE))),
                        ("text_encoder", lambda: CLIPTextModel(CLIPTextConfig(**(TINY_TEXT if tiny else SD21_TEXT))))):
        model = build()
        model.save_pretrained(prior / name)
        del model
        gc.collect()
    save_clip_tokenizer(prior / "tokenizer")
    import diffusers

    (prior / "scheduler").mkdir(parents=True, exist_ok=True)  # the published file, clip_sample (DDIM's) included
    (prior / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "PNDMScheduler", "_diffusers_version": diffusers.__version__, **SD21_SCHEDULER,
         "trained_betas": None}, indent=2))

    (prior / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "requires_safety_checker": False, "safety_checker": [None, None],
        "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]}, indent=2))

    cfg = CLIPConfig(**(TINY_CLIP if tiny else CLIP_L14))
    model = CLIPModel(cfg)
    model.save_pretrained(clip)
    dim = cfg.projection_dim
    del model
    gc.collect()
    save_clip_tokenizer(clip)
    proc = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    size = cfg.vision_config.image_size
    proc(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(clip)
    head = torch.nn.Linear(dim, 1)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(root / "aesthetic_head.safetensors"))
    (root / "built.json").write_text(json.dumps({"tiny": tiny}))
    return paths(root)


def paths(root: Path) -> dict[str, str]:
    return {"prior": str(root / "sd21"), "clip": str(root / "clip"),
            "head": str(root / "aesthetic_head.safetensors")}


# --- measuring -----------------------------------------------------------------------------------------------------

class Memory:
    """Peak memory since `reset`: RSS high-water mark (Linux: /proc/self/clear_refs resets VmHWM; elsewhere
    the process's lifetime peak from getrusage) and, on CUDA, torch's max allocated."""

    def __init__(self, device, thorough: bool = True) -> None:
        self.cuda = device.type == "cuda"
        self.resettable = Path("/proc/self/clear_refs").exists()
        self.thorough = thorough  # collect garbage and trim the heap first (~0.4 s; skipped at --tiny sizes)

    def reset(self) -> None:
        import torch

        if self.thorough:
            gc.collect()
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so the next peak starts low
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        if self.resettable:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.resettable = False

    def rss_gib(self) -> float:
        """Resident set size now."""
        return _status_kib("VmRSS") / 1024**2

    def peak(self) -> dict:
        import torch

        if self.resettable:
            rss, how = _status_kib("VmHWM") / 1024**2, "since reset"
        else:
            import resource

            scale = 1 if sys.platform == "darwin" else 1024
            rss, how = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / GIB, "process lifetime"
        out = {"peak_rss_gib": round(rss, 2), "rss_peak_kind": how}
        if self.cuda:
            out["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated() / GIB, 2)
        return out


def _status_kib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _now() -> tuple[float, float]:
    """(wall, this process's CPU) seconds. With one torch thread, CPU seconds are the work done: unlike wall
    time they hardly move when other processes share the cores."""
    return time.perf_counter(), time.process_time()


class CallLog:
    """Calls, samples (batch rows), wall and CPU seconds per named network: forward hooks on modules,
    wrappers on methods (the VAE's decode, a reward's score). CUDA is synchronised around each call."""

    def __init__(self, device) -> None:
        self.cuda = device.type == "cuda"
        self.rows: dict[str, list] = defaultdict(lambda: [0, 0, 0.0, 0.0])

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def _add(self, name: str, samples: int, start: tuple[float, float]) -> None:
        self._sync()
        wall, cpu = _now()
        row = self.rows[name]
        row[0], row[1] = row[0] + 1, row[1] + samples
        row[2], row[3] = row[2] + wall - start[0], row[3] + cpu - start[1]

    def start(self) -> tuple[float, float]:
        self._sync()
        return _now()

    def module(self, module, name: str) -> None:
        started = {}

        def pre(mod, args, kwargs):
            if mod is not module:  # a deepcopy of the module (VSD's particle model) carries these hooks too
                return
            x = args[0] if args else kwargs["sample"]
            started["b"], started["t"] = x.shape[0], self.start()

        def post(mod, args, kwargs, out):
            if mod is module:
                self._add(name, started["b"], started["t"])

        module.register_forward_pre_hook(pre, with_kwargs=True)
        module.register_forward_hook(post, with_kwargs=True)

    def method(self, obj, attr: str, name: str) -> None:
        fn = getattr(obj, attr)

        def timed(x, *args, **kwargs):
            t0 = self.start()
            out = fn(x, *args, **kwargs)
            self._add(name, x.shape[0], t0)
            return out

        setattr(obj, attr, timed)

    def snapshot(self) -> dict[str, tuple]:
        return {k: tuple(v) for k, v in self.rows.items()}

    @staticmethod
    def diff(after: dict, before: dict, steps: int) -> dict[str, dict]:
        out = {}
        for k, now in after.items():
            c, s, wall, cpu = (a - b for a, b in zip(now, before.get(k, (0, 0, 0.0, 0.0))))
            if c:
                out[k] = {"calls": c / steps, "samples": s / steps, "seconds": wall / steps, "cpu_seconds": cpu / steps}
        return out


def measure(name: str, fn, steps: int, log: CallLog, mem: Memory, **info) -> dict:
    """Run ``fn(steps)`` (it does ``steps`` optimisation steps) and return its per-step figures."""
    mem.reset()
    before = log.snapshot()
    t0 = log.start()
    fn(steps)
    log._sync()
    wall, cpu = ((b - a) / steps for a, b in zip(t0, _now()))
    row = {"name": name, "s_per_step": round(wall, 3), "cpu_s_per_step": round(cpu, 3), "steps_timed": steps, **info,
           "per_step": CallLog.diff(log.snapshot(), before, steps), **mem.peak()}
    print(f"  measured {name}: {wall:.2f} s/step wall, {cpu:.2f} s/step CPU, peak RSS {row['peak_rss_gib']:.2f} GiB",
          flush=True)
    return row


# --- our engine and the official call pattern ---------------------------------------------------------------

def ours(prior, reward, method: str, n: int, s: int, preview_schedule: str = "from-t", cfg: float = 100.0,
         lora_rank: int = 0, seed: int = 0):
    """fn(steps): ``steps`` steps of the library's loop (`loop.optimize` on an `ImageRepresentation`: what
    `loop.run` does, without its final decode) with every step a reward step."""
    import torch

    from rewardsds.loop import LoopConfig, optimize
    from rewardsds.losses import GuidanceConfig, build_guidance
    from rewardsds.representations.image import ImageRepresentation, init_image

    gcfg = GuidanceConfig(method=method, cfg=cfg, n_noises=n, denoise_steps=s, preview_schedule=preview_schedule,
                          vsd_lora_rank=lora_rank)
    guidance = build_guidance(gcfg, prior, reward if gcfg.uses_reward else None, generator_seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x0 = init_image(prior, "noise", 1, gen)

    def fn(steps: int) -> None:
        rep = ImageRepresentation(x0, [PROMPT], prior)
        optimize(rep, guidance, LoopConfig(steps=steps, lr=0.01, reward_steps=1.0, frame_every=0), gen,
                 progress=False)

    fn.guidance = guidance
    return fn


def official(prior, reward, n: int, s: int, kind: str, cfg: float = 100.0, preview_cfg: float = 7.5, seed: int = 0):
    """fn(steps): the official RewardSDS code's call pattern, re-expressed on our prior's modules.

    2D (2D_experiments/guidance.py): N noisy latents at t; `explore_direction` runs DDIM (diffusers'
    scheduler, ``set_timesteps(S)``: "leading" spacing, steps_offset 1) over the fixed grid from the first
    grid step <= t down, every call batched over the N candidates with CFG 7.5; decode all N, score; keep the
    top-2 and bottom-2 (`MinMaxRewardStrategy`; N < 4: top-1 and bottom-1); then a SEPARATE U-Net pass at t on the kept
    candidates for the SDS gradient (CFG 100).
    3D (threestudio-reward-sds/guidance/reward_mvdream_guidance.py, on SD with one view): per candidate,
    its own noise, DDIM from t on ``linspace(0, T-1, S)`` (t prepended), decode, score, then the pass at t,
    identical to the preview's first call, repeated; all N candidates enter the loss."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler

    from rewardsds.loop import LoopConfig

    unet, T = prior.unet, prior.num_train_timesteps
    ac = prior.alphas_cumprod
    sched = DDIMScheduler.from_config(prior.scheduler.config)
    sched.set_timesteps(s)
    grid2d = [int(g) for g in sched.timesteps]
    grid3d = [int(g) for g in np.linspace(0, T - 1, s, dtype=int)[::-1]]
    schedule = LoopConfig().schedule(T)
    gen = torch.Generator().manual_seed(seed)
    from rewardsds.representations.image import init_image

    x = torch.nn.Parameter(init_image(prior, "noise", 1, gen).to(prior.device))
    opt = torch.optim.Adam([x], lr=0.01, weight_decay=0.0)
    emb = prior.embed([PROMPT])
    dt = prior.dtype

    def eps_cfg(lat, tau, scale):
        b = lat.shape[0]
        ctx = torch.cat([emb.cond.expand(b, -1, -1), emb.uncond.expand(b, -1, -1)]).to(dt)
        tt = torch.full((2 * b,), int(tau), dtype=torch.long, device=lat.device)
        out = unet(torch.cat([lat, lat]).to(dt), tt, encoder_hidden_states=ctx).sample.float()
        cond, uncond = out.chunk(2)
        return uncond + scale * (cond - uncond)

    def x0_of(lat, e, tau):
        a = ac[tau]
        return (lat - (1 - a).sqrt() * e) / a.sqrt()

    def step(i: int) -> None:
        t = schedule.sample(i, gen)
        w = 1 - ac[t]
        with torch.no_grad():
            if kind == "2d":
                eps = torch.randn((n, *x.shape[1:]), generator=gen).to(x.device)
                x_t = prior.add_noise(x.detach().expand(n, -1, -1, -1), eps, torch.full((n,), t, device=x.device))
                lat = x_t
                for tau in grid2d:
                    if tau > t:
                        continue
                    lat = sched.step(eps_cfg(lat, tau, preview_cfg), tau, lat).prev_sample
                rewards = reward(prior.decode(lat), [PROMPT] * n)
                k = kept_per_side(n)  # rows may repeat on ties, as in the official code
                keep = torch.cat([rewards.topk(k).indices, (-rewards).topk(k).indices])
                resid = eps_cfg(x_t[keep], t, cfg) - eps[keep]
                wts = torch.full((len(keep),), 1.0 / len(keep), device=x.device)
            else:
                resids, rewards = [], []
                for _ in range(n):
                    eps = torch.randn(x.shape, generator=gen).to(x.device)
                    x_t = prior.add_noise(x.detach(), eps, torch.full((1,), t, device=x.device))
                    points = [g for g in grid3d if g <= t]
                    points = points if points and points[0] == t else [t, *points]
                    lat = x_t
                    for tau, nxt in zip(points[:-1], points[1:]):
                        x0 = x0_of(lat, eps_cfg(lat, tau, cfg), tau)
                        e = (lat - ac[tau].sqrt() * x0) / (1 - ac[tau]).sqrt()
                        lat = ac[nxt].sqrt() * x0 + (1 - ac[nxt]).sqrt() * e
                    rewards.append(reward(prior.decode(lat), [PROMPT])[0])
                    resids.append(eps_cfg(x_t, t, cfg) - eps)  # the call at t again
                resid = torch.cat(resids)
                wts = torch.full((n,), 1.0 / n, device=x.device)
            grad = torch.nan_to_num(w * (wts.view(-1, 1, 1, 1) * resid).sum(0, keepdim=True))
        loss = 0.5 * (x - (x - grad).detach()).pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fn(steps: int) -> None:
        for i in range(steps):
            step(i)

    return fn


def kept_per_side(n: int) -> int:
    """The official 2D `MinMaxRewardStrategy` keeps the top 2 and bottom 2 (it asserts N >= 4; fewer here)."""
    return max(1, min(2, n // 2))


def expected_calls(n: int, s: int, t_lo: int = 20, t_hi: int = 980, T: int = 1000) -> dict[str, float]:
    """U-Net SAMPLES per step (CFG counts 2 per candidate) averaged over t ~ U{t_lo..t_hi}, for a paper-full
    extrapolation: ours ("from-t": S calls; "global": 1 + grid points below t), the official 2D pattern
    (grid steps <= t of diffusers' leading S-step grid + the separate pass on the 4 kept candidates) and 3D
    (per candidate: the linspace grid below t + the repeated pass at t)."""
    import numpy as np

    from rewardsds.candidates import preview_grid

    ts = range(t_lo, t_hi + 1)
    lead = [k * (T // s) + 1 for k in range(s)]  # DDIMScheduler leading spacing, steps_offset=1
    lin = [int(g) for g in np.linspace(0, T - 1, s, dtype=int)]
    kept = 2 * kept_per_side(n)

    def mean(f):
        return sum(f(t) for t in ts) / len(ts)

    calls = {
        "ours from-t": mean(lambda t: len(preview_grid(t, s, "from-t", T))),
        "ours global": mean(lambda t: len(preview_grid(t, s, "global", T))),
        "official 2D": mean(lambda t: sum(g <= t for g in lead) + 1),
        "official 3D": mean(lambda t: n * (len({t, *[g for g in lin if g <= t]}) - 1 + 1)),
    }
    samples = {"ours from-t": calls["ours from-t"] * 2 * n, "ours global": calls["ours global"] * 2 * n,
               "official 2D": (calls["official 2D"] - 1) * 2 * n + 2 * kept,
               "official 3D": calls["official 3D"] * 2}
    return {"calls": calls, "samples": samples}


# --- phases --------------------------------------------------------------------------------------------------------

def _setup(args):
    import torch

    torch.set_num_threads(args.threads)
    from rewardsds._compat import quiet_loading

    quiet_loading()
    device = torch.device(args.device)
    return torch, device


def _dtype(args, torch):
    return {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]


def _load(args, p, torch, device, log):
    from rewardsds.priors.diffusers_prior import DiffusersPrior
    from rewardsds.rewards.factory import load_reward

    t0 = time.perf_counter()
    prior = DiffusersPrior.from_pretrained(p["prior"], device=device, dtype=_dtype(args, torch))
    load_prior_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reward = load_reward(f"clip@{p['clip']}", device=str(device))
    load_reward_s = time.perf_counter() - t0
    log.module(prior.unet, "unet")
    log.method(prior.vae, "decode", "vae_decode")
    log.method(reward, "score", "reward")
    return prior, reward, {"load_prior_s": round(load_prior_s, 2), "load_clip_reward_s": round(load_reward_s, 2),
                           "prior_dtype": str(prior.dtype).removeprefix("torch."),
                           "unet_params_m": round(sum(x.numel() for x in prior.unet.parameters()) / 1e6, 1),
                           "text_params_m": round(sum(x.numel() for x in prior.text_encoder.parameters()) / 1e6, 1),
                           "vae_params_m": round(sum(x.numel() for x in prior.vae.parameters()) / 1e6, 1),
                           "clip_params_m": round(sum(x.numel() for x in reward.model.parameters()) / 1e6, 1),
                           "text_length": int(prior.tokenizer.model_max_length)}


def phase_engine(args, p) -> dict:
    """SDS, RewardSDS presets, the official patterns and component costs, in one process."""
    torch, device = _setup(args)
    mem, log = Memory(device, thorough=not args.tiny), CallLog(device)
    mem.reset()
    prior, reward, info = _load(args, p, torch, device, log)
    info.update(mem.peak(), rss_after_load_gib=round(mem.rss_gib(), 2))
    print(f"  loaded: {info}", flush=True)
    rows, comps = [], {}

    # components, which double as warm-up: the text encoder, one U-Net call of SDS's size, one decode.
    # The weights are memory-mapped from the safetensors files: they become resident as they are first used.
    def timed(key: str, fn) -> None:
        t0 = log.start()
        fn()
        log._sync()
        wall, cpu = (b - a for a, b in zip(t0, _now()))
        comps[key] = f"{wall:.3f} s wall / {cpu:.3f} s CPU"

    emb = {}
    timed("text encoder (batch 2)", lambda: emb.setdefault("e", prior.embed([PROMPT])))
    with torch.no_grad():
        lat = torch.randn(1, *prior.sample_shape).to(device)
        timed("first U-Net call (batch 2, cold)", lambda: prior.predict_eps(lat, torch.tensor(500), emb["e"]))
        timed("first VAE decode (batch 1, cold)", lambda: prior.decode(lat))
    info["rss_after_warmup_gib"] = round(mem.rss_gib(), 2)
    steps = args.steps
    rows.append(measure("sds", ours(prior, reward, "sds", 1, 1), steps, log, mem, N=1, S="-", K="-"))

    settings = ["paper-small", "default"] if "paper-small" not in args.skip else ["default"]
    measured_settings = list(settings)
    for name in settings:
        n, s, _ = SETTINGS[name]
        rows.append(measure(f"reward-sds {name}", ours(prior, reward, "reward-sds", n, s), steps, log, mem,
                            N=n, S=s, K=1.0))
    if args.full_steps:
        n, s, k = SETTINGS["paper-full"]
        for sch in ("from-t", "global"):
            rows.append(measure(f"reward-sds paper-full {sch}", ours(prior, reward, "reward-sds", n, s, sch), steps,
                                log, mem, N=n, S=s, K=k))
        measured_settings.append("paper-full")
    for kind in ("2d", "3d"):
        if ("official" if kind == "2d" else "official-3d") in args.skip:
            continue
        for name in (args.compare if kind == "2d" else args.compare_3d):
            if name == "paper-full" and not args.full_steps:
                continue
            n, s, _ = SETTINGS[name]
            rows.append(measure(f"official {kind.upper()} {name}", official(prior, reward, n, s, kind), steps, log,
                                mem, N=n, S=s, K=1.0))
    if "aesthetic" not in args.skip:
        comps.update(aesthetic_cost(args, p, device, mem))
    return {"load": info, "components": comps, "rows": rows, "measured_settings": measured_settings}


def aesthetic_cost(args, p, device, mem) -> dict:
    """The aesthetic reward (CLIP ViT-L/14 vision tower + linear head) through its loader, on 4 images."""
    import torch

    from rewardsds.rewards.aesthetic import AestheticReward

    mem.reset()
    t0 = time.perf_counter()
    aes = AestheticReward.from_pretrained(p["clip"], p["head"], device=str(device))
    load_s = time.perf_counter() - t0
    size = 512 if not args.tiny else 16
    images = torch.rand(4, 3, size, size)
    t0 = _now()
    aes(images, [PROMPT] * 4)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = ((b - a) / 4 for a, b in zip(t0, _now()))
    out = {"aesthetic reward load": f"{load_s:.2f} s",
           "aesthetic reward per image (batch 4, 512 px in)": f"{wall:.3f} s wall / {cpu:.3f} s CPU",
           "peak RSS with the aesthetic reward loaded too": f"{mem.peak()['peak_rss_gib']:.2f} GiB"}
    del aes
    gc.collect()
    return out


def phase_vsd(args, p) -> dict:
    """RewardVSD with a LoRA particle model (rank 4 on to_q/k/v/out), as the SD defaults choose."""
    torch, device = _setup(args)
    mem, log = Memory(device, thorough=not args.tiny), CallLog(device)
    mem.reset()
    prior, reward, info = _load(args, p, torch, device, log)
    prior.embed([PROMPT])
    rss_loaded = mem.rss_gib()
    mem.reset()
    t0 = time.perf_counter()
    fn = ours(prior, reward, "reward-vsd", args.vsd_n, 1, cfg=7.5, lora_rank=4)
    build_s = time.perf_counter() - t0
    particle = fn.guidance.particle
    net = particle.net
    shares = net is prior.unet or any(a.data_ptr() == b.data_ptr()
                                      for a, b in zip(net.parameters(), prior.unet.parameters()))
    names = getattr(particle, "trained", None) or {n for n, x in net.named_parameters() if x.requires_grad}
    trained = sum(x.numel() for n, x in net.named_parameters() if n in names)
    frozen_copy = 0 if shares else sum(x.numel() * x.element_size() for n, x in net.named_parameters()
                                       if n not in names)
    log.module(net, "unet_phi")
    build = {"particle_build_s": round(build_s, 2), "rss_before_particle_gib": round(rss_loaded, 2),
             "rss_after_particle_gib": round(mem.rss_gib(), 2), "lora_trainable_params_m": round(trained / 1e6, 3),
             "frozen_unet_copy_gib": round(frozen_copy / GIB, 2), "particle_shares_prior_weights": shares,
             "particle_dtype": str(next(net.parameters()).dtype).removeprefix("torch.")}
    print(f"  VSD particle: {build}", flush=True)
    row = measure(f"reward-vsd LoRA r4 N={args.vsd_n}", fn, args.steps, log, mem, N=args.vsd_n, S=1, K=1.0)
    return {"load": info, "vsd": build, "rows": [row]}


def phase_generate(args, p) -> dict:
    """`rewardsds generate PROMPT --prior FOLDER --steps 2 --method sds` end to end: a child process (its
    wall time includes imports and loading) or, with --no-isolate, `rewardsds.cli.main` in this process."""
    out = Path(tempfile.mkdtemp(prefix="bench_scale_generate-"))
    cmd = ["generate", PROMPT, "--prior", p["prior"], "--steps", "2", "--method", "sds", "--device", args.device,
           "--out", str(out / "run"), "--threads", str(args.threads), "--no-progress"]
    try:
        t0 = time.perf_counter()
        if args.isolate:
            exe = shutil.which("rewardsds", path=str(Path(sys.executable).parent))
            full = [exe, *cmd] if exe else [sys.executable, "-m", "rewardsds.cli", *cmd]
            rc, usage, stdout, stderr = run_child(full, capture=True)
            wall = time.perf_counter() - t0
            shown = " ".join(["rewardsds" if exe else "python -m rewardsds.cli", *cmd])
        else:
            from rewardsds.cli import main as cli_main

            buf_out, buf_err = _Tee(), _Tee()
            with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_err):
                rc = cli_main(cmd)
            wall = time.perf_counter() - t0
            stdout, stderr, usage = buf_out.text, buf_err.text, {"peak_rss_gib": None, "cpu_s": None}
            shown = " ".join(["rewardsds", *cmd])
        summary = {}
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads((out / "run" / "summary.json").read_text())
        return {"generate": {"command": shown, "returncode": rc, "wall_s": round(wall, 1),
                             "loop_seconds": summary.get("seconds"), "run_wall_seconds": summary.get("wall_seconds"),
                             **usage, "stdout": stdout.strip()[-600:],
                             "stderr": stderr.strip()[-1500:] if rc else ""}}
    finally:
        shutil.rmtree(out, ignore_errors=True)


class _Tee:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def run_child(cmd: list[str], capture: bool = False) -> tuple[int, dict, str, str]:
    """Run ``cmd``; (exit code, {peak_rss_gib, cpu_s} of the child itself from os.wait4 where available,
    stdout, stderr). Output goes to temporary files when captured (no pipe to drain while waiting)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out if capture else None, stderr=err if capture else None)
        usage = {"peak_rss_gib": None, "cpu_s": None}
        if hasattr(os, "wait4"):
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            usage = {"peak_rss_gib": round(ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024) / GIB, 2),
                     "cpu_s": round(ru.ru_utime + ru.ru_stime, 1)}
        else:
            proc.wait()
        out.seek(0)
        err.seek(0)
        return proc.returncode, usage, out.read(), err.read()


PHASES = {"engine": phase_engine, "vsd": phase_vsd, "generate": phase_generate}


def run_phase(name: str, args, p, argv: list[str]) -> dict:
    """A phase in this process, or in a child (`--phase NAME`) whose result comes back as JSON."""
    if not args.isolate or name == "generate":
        return PHASES[name](args, p)
    with tempfile.TemporaryDirectory(prefix="bench_scale-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--phase", name, "--phase-out", str(result),
               "--folder", str(args.folder)]
        rc, usage, _, _ = run_child(cmd)
        if rc or not result.exists():
            return {"error": f"phase {name} failed (exit {rc})", "child": usage}
        out = json.loads(result.read_text())
        out["child"] = usage
        return out


def build_phase(args, argv: list[str]) -> dict:
    root = Path(args.folder)
    if (root / "built.json").exists() and json.loads((root / "built.json").read_text()).get("tiny") == args.tiny:
        return {"build_s": 0.0, "reused": True}
    t0 = time.perf_counter()
    if args.isolate:
        rc, _, _, _ = run_child([sys.executable, str(Path(__file__).resolve()), *argv, "--phase", "build",
                                    "--folder", str(root)])
        if rc:
            raise SystemExit(f"bench_scale: building the models failed (exit {rc})")
    else:
        build_models(root, args.tiny)
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return {"build_s": round(time.perf_counter() - t0, 1), "reused": False, "disk_gib": round(size / GIB, 2)}


# --- report --------------------------------------------------------------------------------------------------------

def _fmt(x, nd=2) -> str:
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def _basis(args) -> tuple[str, str, str]:
    """(row key, per-call key, label) of the figures that verdicts and extrapolations use: CPU seconds on a
    CPU (robust to other processes on a shared machine; with one thread they are the work done), wall
    seconds on a GPU."""
    if args.device == "cpu":
        return "cpu_s_per_step", "cpu_seconds", "CPU s"
    return "s_per_step", "seconds", "wall s"


def _unit_costs(rows: list[dict], args) -> dict:
    """Seconds per U-Net sample (from the largest-batch calls measured), per decoded image, per scored
    image, and the step's remainder, from the measured reward-sds rows (in `_basis` seconds)."""
    key, ckey, _ = _basis(args)
    cands = [r for r in rows if r["name"].startswith("reward-sds") and r["per_step"].get("unet")]
    if not cands:
        return {}
    best = max(cands, key=lambda r: r["per_step"]["unet"]["samples"] / r["per_step"]["unet"]["calls"])
    ps = best["per_step"]
    u, d, rw = ps["unet"], ps.get("vae_decode"), ps.get("reward")
    rest = best[key] - sum(v[ckey] for v in ps.values())
    return {"from": best["name"], "unet_s_per_sample": u[ckey] / u["samples"],
            "decode_s_per_image": d[ckey] / d["samples"] if d else 0.0,
            "reward_s_per_image": rw[ckey] / rw["samples"] if rw else 0.0, "rest_s": max(0.0, rest)}


def extrapolate(rows: list[dict], args, n: int = 10, s: int = 15) -> list[dict]:
    """paper-full rows as U-Net samples x seconds per sample (+ N decodes and N reward images)."""
    c = _unit_costs(rows, args)
    if not c:
        return []
    e = expected_calls(n, s)
    out = []
    for key in ("ours from-t", "ours global", "official 2D", "official 3D"):
        samples = e["samples"][key]
        sec = samples * c["unet_s_per_sample"] + n * (c["decode_s_per_image"] + c["reward_s_per_image"]) + c["rest_s"]
        out.append({"name": f"{'reward-sds' if key.startswith('ours') else 'official'} paper-full "
                            f"{key.removeprefix('ours ').removeprefix('official ')} (EXTRAPOLATED)",
                    _basis(args)[0]: round(sec, 3), "N": n, "S": s, "K": 1.0, "extrapolated": True,
                    "unet_calls": round(e["calls"][key], 2), "unet_samples": round(samples, 1),
                    "decodes": n, "basis": c["from"]})
    return out


def _k(value) -> str:
    return value if isinstance(value, str) else ("all" if value == 1.0 else f"{value:.0%}")


def report(res: dict, args) -> list[str]:
    key, ckey, unit = _basis(args)
    cuda = args.device.startswith("cuda")
    L = []
    env = res["environment"]
    L.append(f"# bench_scale  {env['date']}  command: {env['command']}")
    L.append(f"# {env['machine']}; torch {env['torch']}, diffusers {env['diffusers']}, transformers "
             f"{env['transformers']}, peft {env['peft']}; torch threads {args.threads}; device {args.device}; "
             f"load average before {env['loadavg_before']}, after {env.get('loadavg_after')}")
    b = res["build"]
    built = ("reused from an earlier --folder build" if b.get("reused") else
             f"built from configuration in {b.get('build_s')} s, {b.get('disk_gib')} GiB on disk")
    L.append(f"# models: {'TINY test sizes' if args.tiny else 'SD-2.1-base + CLIP ViT-L/14 shapes'}, random "
             f"weights ({built}), loaded with DiffusersPrior.from_pretrained / load_reward('clip@DIR')")
    if res.get("rerendered"):
        L.append(f"# {res['rerendered']}")
    eng = res.get("engine", {})
    if "error" in eng:
        L.append(f"ENGINE PHASE FAILED: {eng['error']}")
    if eng.get("load"):
        ld = eng["load"]
        L.append(f"# loaded: U-Net {ld['unet_params_m']}M, text encoder {ld['text_params_m']}M (text length "
                 f"{ld['text_length']}), VAE {ld['vae_params_m']}M, CLIP {ld['clip_params_m']}M params; prior dtype "
                 f"{ld['prior_dtype']}; load {ld['load_prior_s']} s + {ld['load_clip_reward_s']} s; RSS after load "
                 f"{ld['rss_after_load_gib']} GiB (safetensors are memory-mapped), after the first U-Net call and "
                 f"decode {ld.get('rss_after_warmup_gib')} GiB")
    if res.get("bf16_note"):
        L.append(f"# {res['bf16_note']}")
    if not cuda:
        L.append("# verdicts, ratios and extrapolations use CPU seconds of the process (one torch thread: the work "
                 "done, nearly independent of other load); wall seconds are shown beside them")
    L.append("")
    rows = list(eng.get("rows", [])) + list(res.get("vsd", {}).get("rows", []))
    extra = extrapolate(eng.get("rows", []), args) if not args.full_steps else []
    hdr = (f"{'method':44s} {'N':>3s} {'S':>3s} {'K':>4s} {'wall s':>8s} {'CPU s':>8s} {'U-Net calls':>11s} "
           f"{'samples':>7s} {'decodes':>7s} {'peak RSS GiB':>12s}" + (f" {'CUDA GiB':>8s}" if cuda else ""))
    L.append("per optimisation step (every timed step is a reward step: K column 'all', whatever the preset's K); "
             "samples = U-Net batch rows incl. CFG; φ = VSD's particle model")
    L.append(hdr)
    L.append("-" * len(hdr))
    for r in rows:
        ps = r["per_step"]
        u = ps.get("unet", {"calls": 0, "samples": 0})
        phi = ps.get("unet_phi")
        calls = f"{u['calls']:g}" + (f"+{phi['calls']:g}φ" if phi else "")
        samples = f"{u['samples']:g}" + (f"+{phi['samples']:g}φ" if phi else "")
        line = (f"{r['name']:44s} {r['N']!s:>3s} {r['S']!s:>3s} {_k(r['K']):>4s} {r['s_per_step']:8.2f} "
                f"{r['cpu_s_per_step']:8.2f} {calls:>11s} {samples:>7s} "
                f"{ps.get('vae_decode', {}).get('samples', 0):>7g} {r['peak_rss_gib']:>12.2f}")
        if cuda:
            line += f" {r.get('cuda_max_allocated_gib', 0):>8.2f}"
        L.append(line)
    by = {r["name"]: r for r in rows}
    if "reward-sds paper-small" in by and "sds" in by:
        sm, sd = by["reward-sds paper-small"], by["sds"]
        L.append(f"{'reward-sds paper-small, mean over K=10%':44s} {2:>3d} {1:>3d} {'10%':>4s} "
                 f"{0.1 * sm['s_per_step'] + 0.9 * sd['s_per_step']:8.2f} "
                 f"{0.1 * sm['cpu_s_per_step'] + 0.9 * sd['cpu_s_per_step']:8.2f}  (0.1 x reward step + 0.9 x SDS)")
    for r in extra:
        wall, cpu = ("-", f"{r[key]:8.1f}") if key == "cpu_s_per_step" else (f"{r[key]:8.1f}", "-")
        L.append(f"{r['name']:44s} {r['N']:>3d} {r['S']:>3d} {'all':>4s} {wall:>8s} {cpu:>8s} "
                 f"{r['unet_calls']:>11g} {r['unet_samples']:>7g} {r['decodes']:>7d} {'-':>12s}")
    c = _unit_costs(eng.get("rows", []), args)
    if extra:
        L.append(f"  EXTRAPOLATED ({unit}): U-Net samples (mean over t ~ U{{20..980}}) x {c['unet_s_per_sample']:.3f} "
                 f"s per sample + 10 x ({c['decode_s_per_image']:.3f} s decode + {c['reward_s_per_image']:.3f} s "
                 f"reward) per image + {c['rest_s']:.3f} s rest, all measured in '{c['from']}' (CPU cost is ~linear "
                 "in batch; on a GPU use --full-steps). 'from-t' is the paper-full preset as the CLI runs it (S "
                 "calls at any t); 'global' is GuidanceConfig(preview_schedule='global'), the paper's grid.")
    L.append("")
    comps = eng.get("components", {})
    if comps:
        L.append("components: " + "; ".join(f"{k}: {v}" for k, v in comps.items()))
    if c:
        L.append(f"unit costs ({unit}, from '{c['from']}'): U-Net {c['unet_s_per_sample']:.3f} s/sample, VAE decode "
                 f"{c['decode_s_per_image']:.3f} s/image, CLIPScore {c['reward_s_per_image']:.3f} s/image, "
                 f"rest of the step {c['rest_s']:.3f} s")
        d = by.get("reward-sds default")
        if d:
            ps = d["per_step"]
            parts = {"U-Net": ps["unet"].get(ckey, 0.0), "VAE decodes": ps.get("vae_decode", {}).get(ckey, 0.0),
                     "reward": ps.get("reward", {}).get(ckey, 0.0)}
            parts["rest"] = max(0.0, d[key] - sum(parts.values()))
            L.append("where a default RewardSDS step goes: " + ", ".join(
                f"{k} {v:.1f} s ({v / d[key]:.0%})" for k, v in parts.items()))
    if importlib.util.find_spec("ImageReward") is None:
        L.append("ImageReward: not measured (package absent; BLIP ViT-L + BERT needs `pip install "
                 "'rewardsds[imagereward]'`)")
    vsd = res.get("vsd", {}).get("vsd")
    if vsd:
        copy = "COPIES the whole U-Net" if not vsd["particle_shares_prior_weights"] else "shares the prior's U-Net"
        L.append(f"VSD particle model: {copy} (frozen copy {vsd['frozen_unet_copy_gib']} GiB, "
                 f"{vsd['particle_dtype']}; RSS {vsd['rss_before_particle_gib']} -> "
                 f"{vsd['rss_after_particle_gib']} GiB) + LoRA {vsd['lora_trainable_params_m']}M trainable; built in "
                 f"{vsd['particle_build_s']} s")
    elif "error" in res.get("vsd", {}):
        L.append(f"VSD PHASE FAILED: {res['vsd']['error']}")

    # comparisons with the official pattern
    L.append("")
    L.append(f"ours / official at identical N, S, K ({unit}; same process, same models; < 1 = ours faster). 3D: "
             "ours is the same batched guidance call as 2D (one view), the official 3D code loops over candidates")
    comparisons = []
    for kind in ("2D", "3D"):
        for name in ("default", "paper-small", "paper-full"):
            off = by.get(f"official {kind} {name}")
            if name == "paper-full":
                for sch in ("from-t", "global"):
                    if args.full_steps:
                        us, o, tag = by.get(f"reward-sds paper-full {sch}"), off, ""
                    else:
                        us = next((r for r in extra if r["name"].startswith(f"reward-sds paper-full {sch}")), None)
                        o = next((r for r in extra if r["name"].startswith(f"official paper-full {kind}")), None)
                        tag = " (EXTRAPOLATED)"
                    if us and o:
                        comparisons.append((f"{kind} paper-full, ours {sch}{tag}", us, o))
                continue
            us = by.get(f"reward-sds {name}")
            if us and off:
                comparisons.append((f"{kind} {name} (N={us['N']}, S={us['S']})", us, off))
    for label, a, b in comparisons:
        wall = f"  (wall {a['s_per_step'] / b['s_per_step']:.2f})" if "s_per_step" in a and "s_per_step" in b else ""
        L.append(f"  {label:46s} ours {a[key]:9.2f}  official {b[key]:9.2f}  ratio {a[key] / b[key]:5.2f}{wall}")
    if not comparisons:
        L.append("  (none measured)")

    # targets
    L.append("")
    L.append("targets")
    targets = []
    if "sds" in by and "reward-sds default" in by:
        d, sd = by["reward-sds default"], by["sds"]
        ratio, wall = d[key] / sd[key], d["s_per_step"] / sd["s_per_step"]
        targets.append(("default RewardSDS (N=4, S=1) <= 3x SDS per step", ratio <= 3.0,
                        f"{ratio:.2f}x ({d[key]:.2f} / {sd[key]:.2f} {unit}; wall {wall:.2f}x)"
                        + ("" if args.tiny else _floor_note(c, sd[key]))))
    else:
        targets.append(("default RewardSDS (N=4, S=1) <= 3x SDS per step", None, "not measured"))
    ratios = [(lbl, a[key] / b[key]) for lbl, a, b in comparisons]
    if ratios:
        bad = [(lbl, r) for lbl, r in ratios if r > 1]
        worst = max(ratios, key=lambda x: x[1])
        targets.append(("never slower than the official pattern at identical N, S, K", not bad,
                        f"worst ratio {worst[1]:.2f} ({worst[0]})" +
                        ("" if not bad else "; slower in: " + ", ".join(f"{lbl} {r:.2f}" for lbl, r in bad))))
    else:
        targets.append(("never slower than the official pattern at identical N, S, K", None, "not measured"))
    full = [r for r in rows if r["name"].startswith("reward-sds paper-full")]
    if cuda and full:
        gb = max(r.get("cuda_max_allocated_gib", 0) for r in full) * GIB / 1e9
        targets.append(("peak GPU memory of paper-full <= 24 GB", gb <= 24, f"{gb:.1f} GB (max allocated)"))
    elif cuda:
        targets.append(("peak GPU memory of paper-full <= 24 GB", None, "not measured (pass --full-steps)"))
    else:
        targets.append(("peak GPU memory of paper-full <= 24 GB", None, "not measured (no GPU)"))
    for what, ok, fig in targets:
        verdict = "not measured" if ok is None else ("met" if ok else "NOT met")
        L.append(f"  [{verdict:>12s}] {what}: {fig}")
    if "reward-sds paper-small" in by and "sds" in by:
        sm, sd = by["reward-sds paper-small"], by["sds"]
        L.append(f"  for reference: paper-small (N=2, S=1) costs {sm[key] / sd[key]:.2f}x SDS per reward step and "
                 f"{(0.1 * sm[key] + 0.9 * sd[key]) / sd[key]:.2f}x SDS per step averaged over its K=10%")

    gen = res.get("generate", {}).get("generate")
    if gen:
        L.append("")
        ok = "ok" if gen["returncode"] == 0 else f"FAILED (exit {gen['returncode']})"
        L.append(f"CLI end to end: {gen['command']}")
        L.append(f"  {ok}: wall {gen['wall_s']} s (process start to exit; CPU {_fmt(gen.get('cpu_s'))} s), of which "
                 f"the run {gen['run_wall_seconds']} s and the 2 loop steps {gen['loop_seconds']} s; peak RSS "
                 f"{_fmt(gen['peak_rss_gib'])} GiB")
        if gen["stderr"]:
            L.append("  stderr: " + gen["stderr"].replace("\n", "\n          "))
    for note in res.get("notes", []):
        L.append(note)
    res["targets"] = [{"target": w, "met": ok, "figure": f} for w, ok, f in targets]
    res["comparisons"] = [{"label": lbl, "basis": unit, "ours": a[key], "official": b[key],
                           "ratio": round(a[key] / b[key], 3)} for lbl, a, b in comparisons]
    res["extrapolated"] = extra
    res["unit_costs"] = c
    return L


def _floor_note(c: dict, sds_s: float) -> str:
    """The least any implementation that previews, decodes and scores 4 candidates can cost, in SDS steps."""
    if not c:
        return ""
    floor = 8 * c["unet_s_per_sample"] + 4 * (c["decode_s_per_image"] + c["reward_s_per_image"])
    return (f"; floor at these unit costs (one U-Net call of 8 samples + 4 decodes + 4 scores, no overhead): "
            f"{floor / sds_s:.2f}x")


def _environment(argv: list[str]) -> dict:
    import diffusers
    import torch
    import transformers

    try:
        import peft

        peft_v = peft.__version__
    except ImportError:
        peft_v = "absent"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["scripts/bench_scale.py", *argv]),
            "machine": f"{cpu}, {os.cpu_count()} cores, torch CPU capability "
                       f"{torch.backends.cpu.get_cpu_capability()}"
                       + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""),
            "torch": torch.__version__, "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "peft": peft_v, "loadavg_before": _loadavg()}


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bf16_slowdown() -> float:
    """Seconds of a bf16 matmul over an fp32 one on this CPU (no AVX512-BF16/AMX: often 50-100x)."""
    import torch

    a = torch.randn(512, 512)
    times = {}
    for dt in (torch.float32, torch.bfloat16):
        x = a.to(dt)
        x @ x
        t0 = time.perf_counter()
        for _ in range(3):
            x @ x
        times[dt] = time.perf_counter() - t0
    return times[torch.bfloat16] / times[torch.float32]


def parse(argv: list[str] | None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                    help="the prior's weights (DiffusersPrior.from_pretrained's dtype); auto = fp32 on CPU, fp16 on "
                         "CUDA. Rewards load in fp32 (load_reward has no dtype) and the VSD copy is fp32")
    ap.add_argument("--force-bf16", action="store_true",
                    help="run --dtype bf16 on a CPU even when bf16 is much slower than fp32 there")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--steps", type=int, default=1, help="timed optimisation steps per method (default 1)")
    ap.add_argument("--full-steps", action="store_true",
                    help="measure paper-full (N=10, S=15) steps instead of extrapolating them (hours on a CPU)")
    ap.add_argument("--compare", nargs="*", default=["default", "paper-small"], choices=list(SETTINGS),
                    help="settings measured against the official 2D pattern (paper-full only with --full-steps)")
    ap.add_argument("--compare-3d", nargs="*", default=["paper-small"], choices=list(SETTINGS),
                    help="settings measured against the official 3D pattern")
    ap.add_argument("--vsd-n", type=int, default=4, help="N of the RewardVSD measurement (default 4)")
    ap.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts not to measure")
    ap.add_argument("--tiny", action="store_true", help="toy model sizes (the smoke test; implies --no-isolate)")
    ap.add_argument("--folder", type=Path, default=None,
                    help="where the models are built (reused when already built there; default: a temporary "
                         "folder, removed at the end)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="each phase in its own process (default: on, off with --tiny)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    ap.add_argument("--report-from", type=Path, default=None, metavar="JSON",
                    help="print the report of an earlier run's --json file again, measuring nothing")
    ap.add_argument("--phase", choices=["build", *PHASES], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--phase-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.isolate is None:
        args.isolate = not args.tiny
    if args.steps < 1 or args.threads < 1 or args.vsd_n < 1:
        ap.error("--steps, --threads and --vsd-n must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.phase == "build":
        import torch

        torch.set_num_threads(args.threads)
        build_models(args.folder, args.tiny)
        return 0
    if args.phase:
        result = PHASES[args.phase](args, paths(args.folder))
        args.phase_out.write_text(json.dumps(result))
        return 0
    if args.report_from:  # print the report of an earlier run's --json again (no measuring)
        res = json.loads(args.report_from.read_text())
        for k, v in res.get("args", {}).items():
            setattr(args, k, v)
        res["rerendered"] = (f"report printed again from {args.report_from} by the current "
                             "scripts/bench_scale.py --report-from (figures as measured)")
        print("\n".join(report(res, args)))
        return 0

    child_argv = [a for a in argv if a not in ("--isolate",)]
    tmp = None
    if args.folder is None:
        tmp = tempfile.mkdtemp(prefix="bench_scale_models-")
        args.folder = Path(tmp)
    args.folder.mkdir(parents=True, exist_ok=True)
    res: dict = {"environment": _environment(argv), "notes": [],
                 "args": {k: getattr(args, k) for k in ("device", "threads", "tiny", "full_steps")}}
    try:
        if args.dtype == "bf16" and not args.device.startswith("cuda"):
            slow = bf16_slowdown()
            res["bf16_note"] = f"bf16 matmul is {slow:.0f}x slower than fp32 on this CPU"
            if slow > 4 and not args.force_bf16:
                print(f"bench_scale: {res['bf16_note']} (no bf16 hardware): not measured; pass --force-bf16 to run "
                      "anyway", file=sys.stderr)
                return 3
        print("building models ...", flush=True)
        res["build"] = build_phase(args, child_argv)
        p = paths(args.folder)
        print(f"engine ({'isolated' if args.isolate else 'in process'}) ...", flush=True)
        res["engine"] = run_phase("engine", args, p, child_argv)
        if "vsd" not in args.skip:
            print("reward-vsd ...", flush=True)
            res["vsd"] = run_phase("vsd", args, p, child_argv)
        if "generate" not in args.skip:
            print("rewardsds generate ...", flush=True)
            res["generate"] = run_phase("generate", args, p, child_argv)
        res["environment"]["loadavg_after"] = _loadavg()
        lines = report(res, args)
        print("\n".join(lines))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=1, default=str))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    failed = [k for k in ("engine", "vsd", "generate") if "error" in res.get(k, {})]
    gen = res.get("generate", {}).get("generate")
    return 1 if failed or (gen and gen["returncode"]) else 0


if __name__ == "__main__":
    sys.exit(main())
