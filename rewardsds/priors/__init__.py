"""Diffusion priors: one interface (`DiffusionPrior`), adapters per backend. Nothing heavy imported."""

from .base import Conditioning, DiffusionPrior, EpsPrediction, TextEmbedding, eps_from_output

__all__ = ["Conditioning", "DiffusionPrior", "EpsPrediction", "TextEmbedding", "eps_from_output"]
