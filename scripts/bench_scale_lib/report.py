"""The report: unit costs, the paper-full extrapolation, the table per method, ours / official at identical N,
S, K, and the targets with their verdicts (met / NOT met), as text lines; it also stores the targets,
comparisons, extrapolations and unit costs in the result dict (for --json)."""

from __future__ import annotations

import importlib.util

from .common import GIB
from .methods import expected_calls


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
