"""The embedded 3D world: 1-2 solids (sphere, cube, cone, cylinder) on a ground plane, with captions.

The 3D counterpart of `rewardsds.world`, sharing its colours, backdrop and fact names:

* `scenes`: scene sampling, the held-out colour-shape split, captions, view suffixes, vocabulary;
* `render`: exact ray casting of a scene from orbit cameras, and its density/colour field;
* `judge`: an exact, model-free reader of a finished 3D field against a caption;
* `model_judge`: that judge on what `gen3d` made (a radiance field or Gaussians), with each one's
  occupancy threshold (`summary.json`'s ``judge3d``);
* `data`: training batches (one random orbit view per scene, captions with or without the view suffix);
* `negatives`, `tokenizer`, `paths`: hard-negative captions, the word tokenizer, the weights' folders;
* `train`: the 2D world's CLIP and prior trainers run on this world (`train.spec.WORLD3D`).

Nothing is imported here, so `import rewardsds.world3d.scenes` stays numpy-only.
"""
