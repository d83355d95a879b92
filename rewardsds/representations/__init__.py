"""Representations optimised by score distillation: images in model space (`image`) and radiance
fields for text-to-3D (`field`). Submodules are imported explicitly, nothing heavy here."""
