"""The measuring phases, each self-contained (it loads the models it needs): the engine (SDS, the RewardSDS
presets, the official patterns, component costs, the aesthetic reward), RewardVSD with a LoRA particle
model, and ``rewardsds generate`` end to end. Each returns a JSON-able dict."""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .common import GIB, PROMPT, SETTINGS
from .measure import CallLog, Memory, _now, measure, run_child
from .methods import official, ours


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



PHASES = {"engine": phase_engine, "vsd": phase_vsd, "generate": phase_generate}
