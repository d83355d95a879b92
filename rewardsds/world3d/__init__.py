"""The embedded 3D world: 1-2 solids (sphere, cube, cone, cylinder) on a ground plane, with captions.

The 3D counterpart of `rewardsds.world`, sharing its colours, backdrop and fact names:

* `scenes`: scene sampling, the held-out colour-shape split, captions, view suffixes, vocabulary;
* `render`: exact ray casting of a scene from orbit cameras, and its density/colour field;
* `judge`: an exact, model-free reader of a finished 3D field against a caption.

Nothing is imported here, so `import rewardsds.world3d.scenes` stays numpy-only.
"""
