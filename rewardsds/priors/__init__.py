"""Diffusion priors: one interface (`DiffusionPrior`), adapters per backend. Nothing heavy imported."""

from .base import DiffusionPrior, EpsPrediction, TextEmbedding, eps_from_output

__all__ = ["DiffusionPrior", "EpsPrediction", "TextEmbedding", "eps_from_output"]
