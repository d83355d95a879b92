"""VSD's particle score model eps_phi (ProlificDreamer, Wang et al. 2023; RewardVSD, paper Eq. 5).

eps_phi estimates the score of the *current particles* (the images being optimised). It starts as the
prior's network (so eps_phi = eps_pretrained at step 0) and is trained, unweighted, with the standard
diffusion loss ``||eps_phi(x_t', y, t') - eps'||^2`` on the detached particles, one t'-sample per step,
with AdamW without weight decay (RewardSDS official 2D code: lr 3e-4, weight_decay=0).

Two forms (`lora_rank`):

* ``lora_rank > 0``: a LoRA of that rank on every attention layer of the prior's own U-Net (to_q,
  to_k, to_v, to_out.0 of self- and cross-attention; B zero-initialised, scale 1, kept in float32), as
  the official RewardSDS 2D code, ProlificDreamer and threestudio do with diffusers' `LoRAAttnProcessor`
  (rank 4). The adapter is switched on only inside eps_phi's own calls, so the prior's calls see the
  pretrained network, and nothing is copied (a copy of SD-2.1's U-Net is 3.2 GiB in float32; threestudio
  shares it too, running the pretrained pass at LoRA scale 0). The default for Stable Diffusion
  (config.SD_DEFAULTS); needs the optional extra ``rewardsds[lora]`` (peft).
* ``lora_rank = 0``: the whole copy is trained (the world's 4M-parameter U-Net: cheap, and what works
  there).

Priors without a U-Net (the analytic test prior) get a small convolutional network.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F

from . import _compat
from .priors.base import DiffusionPrior, TextEmbedding, eps_from_output

ADAPTER = "vsd_particle"  # the LoRA's adapter name on the prior's U-Net


class TinyEpsNet(torch.nn.Module):
    """A small conv net eps(x_t, t) for priors that have no network to copy (the analytic prior)."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.inp = torch.nn.Conv2d(channels + 1, width, 3, padding=1)
        self.mid = torch.nn.Conv2d(width, width, 3, padding=1)
        self.out = torch.nn.Conv2d(width, channels, 3, padding=1)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tmap = (t.float() / 1000).view(-1, 1, 1, 1).expand(-1, 1, *x_t.shape[2:])
        h = F.silu(self.inp(torch.cat([x_t, tmap], 1)))
        return self.out(F.silu(self.mid(h)))


class ParticleScore:
    def __init__(self, prior: DiffusionPrior, lr: float = 3e-4, lora_rank: int = 0, seed: int = 0,
                 t_range: tuple[float, float] = (0.02, 0.98)) -> None:
        self.prior, self.t_range = prior, t_range
        self.generator = torch.Generator().manual_seed(seed + 1)
        # the new layers (LoRA, the tiny net) draw their init from torch's global RNG: seed it locally, so
        # that a run is a function of its seed alone (and a resumed run equals an uninterrupted one)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            net, params = self._build(prior, lora_rank)
        ids = {id(p) for p in params}
        self.trained = {n for n, p in net.named_parameters() if id(p) in ids}
        self.net = net if self.adapter else net.train()  # the shared U-Net keeps the prior's eval mode
        # no weight decay (AdamW's default 0.01 would shrink a full copy's weights towards zero, off the prior)
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def _build(self, prior: DiffusionPrior, lora_rank: int) -> tuple[torch.nn.Module, list]:
        unet = getattr(prior, "unet", None)
        self.adapter = None
        if unet is not None:
            if lora_rank > 0:
                LoraConfig = _compat.require("peft", "lora", "VSD with LoRA (vsd_lora_rank > 0)").LoraConfig
                if ADAPTER in getattr(unet, "peft_config", {}):  # an earlier run's, on a prior kept loaded
                    unet.delete_adapters(ADAPTER)
                unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank, init_lora_weights="gaussian",
                                            target_modules=["to_k", "to_q", "to_v", "to_out.0"]),
                                 adapter_name=ADAPTER)
                params = [p for n, p in unet.named_parameters() if f"lora_A.{ADAPTER}." in n
                          or f"lora_B.{ADAPTER}." in n]
                for p in params:  # float32 even under a float16 prior (peft casts the input to them)
                    p.data = p.data.float()
                    p.requires_grad_(True)
                unet.disable_adapters()  # on only inside _eps
                self.adapter, self.kind = ADAPTER, "unet"
                return unet, params
            net = copy.deepcopy(unet).float().requires_grad_(True)  # the whole copy is trained
            params = list(net.parameters())
            self.kind = "unet"
        else:
            net = TinyEpsNet(prior.sample_shape[0]).to(prior.device)
            params = list(net.parameters())
            self.kind = "tiny"
        return net, params

    def _eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.kind == "tiny":
            return self.net(x_t, t)
        dtype = self.net.dtype if self.adapter else torch.float32
        out = self.net(x_t.to(dtype), t, encoder_hidden_states=cond.to(dtype)).sample.float()
        return eps_from_output(out, x_t.float(), self.prior.alphas_cumprod[t], self.prior.prediction_type)

    @contextlib.contextmanager
    def _on(self):
        """The LoRA switched on in the prior's U-Net (peft also makes it trainable) for eps_phi's forward and
        backward only; off again after, so the prior's own calls see the pretrained network."""
        if self.adapter is None:
            yield
            return
        self.net.enable_adapters()
        self.net.set_adapter(self.adapter)
        try:
            yield
        finally:
            self.net.disable_adapters()

    @torch.no_grad()
    def predict(self, x_t: torch.Tensor, t: int, emb: TextEmbedding) -> torch.Tensor:
        """eps_phi(x_t, y, t), conditional (guidance 1), for every row of x_t."""
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        with self._on():
            return self._eps(x_t, tt, emb.cond).to(x_t.dtype)

    def train_step(self, particles: torch.Tensor, emb: TextEmbedding,
                   generator: torch.Generator | None = None) -> float:
        """One unweighted denoising step on the detached particles; returns the loss."""
        x0 = particles.detach().float()
        T = self.prior.num_train_timesteps
        lo, hi = int(self.t_range[0] * T), int(self.t_range[1] * T)
        t = torch.randint(lo, hi + 1, (x0.shape[0],), generator=self.generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=self.generator).to(x0.device)
        x_t = self.prior.add_noise(x0, eps, t)
        with self._on():
            loss = F.mse_loss(self._eps(x_t, t, emb.cond), eps)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
        self.opt.step()
        return loss.item()

    def state_dict(self) -> dict:
        """The trained parameters only (a LoRA's, not the frozen U-Net it adapts), the optimiser, and the
        model's own generator: without it a resumed run draws other t' and eps' than an uninterrupted one."""
        trained = {n: p.detach() for n, p in self.net.named_parameters() if n in self.trained}
        return {"net": trained, "opt": self.opt.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        missing = set(state["net"]) - {n for n, _ in self.net.named_parameters()}
        if missing:
            raise ValueError(f"the particle model's state has unknown parameters, e.g. {sorted(missing)[:3]}")
        self.net.load_state_dict(state["net"], strict=False)
        self.opt.load_state_dict(state["opt"])
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"].to(torch.uint8).cpu())
