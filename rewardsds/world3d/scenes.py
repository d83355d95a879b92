"""The embedded 3D world's scenes: 1-2 solids standing on a ground plane, with captions.

The single source of truth for the 3D world's grammar and geometry (the renderer, the judge and the
future training scripts import it). Deterministic given a `random.Random`; numpy-free even, so data
workers can import it cheaply.

Frame (the project's camera convention, `rewardsds.render.cameras`): right-handed, **y up**, the
azimuth-0 camera sits on **+z** looking at the origin. So, seen from the front, +x is *right* and
+z is *towards the viewer*. The ground is the plane ``y = GROUND_Y`` (below the origin, so that a
stack of two big solids still fits the field box ``[-1, 1]^3`` around the point cameras look at).

Every solid has a half-extent ``h`` and fills the box ``[x-h, x+h] x [base, base+2h] x [z-h, z+h]``:
a cube fills it, a cylinder (vertical axis) and a sphere are inscribed, a cone stands apex-up on a
disk of radius ``h``. Their volume / box ratios are therefore 1, pi/4, pi/6 and pi/12, which the
judge uses. The two objects of a scene always differ in colour, so that stacked (touching) solids
stay separable by colour alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from rewardsds.world import grammar
from rewardsds.world.grammar import Parsed, StatedObject  # noqa: F401  (re-exported: one caption reading)
from rewardsds.world.scenes import BACKGROUND, COLOURS  # noqa: F401  (re-exported: one palette)

SHAPES: tuple[str, ...] = ("sphere", "cube", "cone", "cylinder")
# Half-extent h (scene units) per size; the judge splits small/big at SIZE_SPLIT.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.20, 0.24), "big": (0.32, 0.38)}
SIZE_SPLIT = 0.28
GROUND_Y = -0.6
RELATIONS: tuple[str, ...] = ("left of", "right of", "in front of", "behind", "on top of", "and")
# Never shown in training. Purple cone and orange sphere mirror the 2D world's purple triangle and
# orange circle (their side silhouettes); green cylinder holds out the shape with no 2D counterpart.
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    {("purple", "cone"), ("orange", "sphere"), ("green", "cylinder")}
)
FLAT_TOPPED = ("cube", "cylinder")  # what another object can be stacked on

_SINGLE_TEMPLATES = ("{o}", "a photo of {o}", "a render of {o}", "there is {o}")
_RELATION_WORDS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "in front of": ("in front of",),
    "behind": ("behind",),
    "on top of": ("on top of", "stacked on", "on"),
    "and": ("and", "with"),
}
# Keyword -> relation, checked in this order on the words between the two objects ("on the left
# of" holds "on", so "left" must win first).
_REL_KEYWORDS = (("left", "left of"), ("right", "right of"), ("front", "in front of"),
                 ("behind", "behind"), ("top", "on top of"), ("stacked", "on top of"),
                 ("on", "on top of"), ("and", "and"), ("with", "and"))
VIEWS: tuple[str, ...] = ("front", "side", "back", "overhead")
_OBJ_RE = grammar.object_pattern(COLOURS, SHAPES)
# Layout: centres along a relation's axis at +-(SEPARATION +- 0.03), +-CROSS_JITTER across it. The
# minimum gap between two big solids is then 2 * (0.45 - 0.03) - 2 * 0.38 = 0.08.
SEPARATION = 0.45
CROSS_JITTER = 0.06


@dataclass(frozen=True)
class Obj:
    """One solid: centre (x, z) on the floor plan, the height of its bottom, half-extent h."""

    colour: str
    shape: str
    size: str
    x: float = 0.0
    z: float = 0.0
    base: float = GROUND_Y
    half: float = 0.35

    @property
    def centre(self) -> tuple[float, float, float]:
        """Centre of the object's box (not its centroid: a cone's centroid sits at base + h/2)."""
        return (self.x, self.base + self.half, self.z)


@dataclass(frozen=True)
class Scene(grammar.CaptionedScene):
    """1-2 objects; for two, ``objects[0] <relation> objects[1]``; `caption()` in this world's wordings."""

    objects: tuple[Obj, ...]
    single_templates = _SINGLE_TEMPLATES
    relation_words = _RELATION_WORDS


def parse_caption(text: str) -> Parsed:
    """Read a 3D world caption back into objects and relation (a view suffix is ignored).

    Raises ValueError when it names no world object (colour + shape). Two objects with no relation
    word between them read as "and".
    """
    parsed = grammar.parse(text, _OBJ_RE, _REL_KEYWORDS)
    if parsed is None:
        raise ValueError(f"the caption {text!r} names no 3D world object (colour + 3D shape)")
    return parsed


def view_suffix(azimuth_deg: float, elevation_deg: float) -> str:
    """DreamFusion's view-dependent prompt suffix: ", front view" | ", side view" | ", back view" |
    ", overhead view".

    Thresholds: overhead when elevation > 60; else, with azimuth wrapped to [-180, 180), front when
    |azimuth| <= 45, back when |azimuth| >= 135, side otherwise. Delegates to
    `rewardsds.render.cameras.view_label` (imported here, not at module load, to keep this module
    free of torch) so that the suffixes the 3D prior learns are exactly those `gen3d` appends.
    """
    from rewardsds.render.cameras import view_label

    return f", {view_label(elevation_deg, azimuth_deg)} view"


def view_of(caption: str) -> str | None:
    """The view a caption's suffix names ("side" for "..., side view"), or None when it has none."""
    return next((v for v in VIEWS if caption.endswith(f", {v} view")), None)


def suffix_of(caption: str) -> str:
    """The view suffix a caption ends with (", side view"), or "" when it has none."""
    view = view_of(caption)
    return f", {view} view" if view else ""


HORIZONTAL = ("left of", "right of", "in front of", "behind")
"""the relations that live on the floor plan, and so read differently from every side"""


def camera_frame(scene: Scene, azimuth_deg: float) -> Scene:
    """The scene as the orbit camera at `azimuth_deg` sees it: the floor plan turned about the vertical axis
    so that this camera stands at azimuth 0, where the scene frame's words mean what the screen shows ("left
    of": on the left of the image, "in front of": nearer the camera), and a floor-plan relation renamed for
    the turned positions (the axis along which the two centres differ most, then its sign).

    ``x' = x cos a - z sin a, z' = x sin a + z cos a`` (`render.cameras.orbit_eye`: the camera at azimuth a
    stands at (sin a, ., cos a), so the turn by -a brings it to +z). Seen from the back, "left of" becomes
    "right of"; from the side at a = 90, "in front of" becomes "left of". A stack or an unrelated pair
    keeps its words. Near a diagonal view the rename is a coin toss between two axes, as the view is."""
    a = math.radians(azimuth_deg)
    c, s = math.cos(a), math.sin(a)
    objects = tuple(replace(o, x=o.x * c - o.z * s, z=o.x * s + o.z * c) for o in scene.objects)
    relation = scene.relation
    if relation in HORIZONTAL:
        first, second = objects
        dx, dz = first.x - second.x, first.z - second.z
        relation = ("left of" if dx < 0 else "right of") if abs(dx) >= abs(dz) else ("in front of" if dz > 0
                                                                                     else "behind")
    return replace(scene, objects=objects, relation=relation)


_DIRECTION = {"left of": (-1.0, 0.0), "right of": (1.0, 0.0), "in front of": (0.0, 1.0), "behind": (0.0, -1.0)}
"""where a floor-plan relation puts the first object from the second, (x, z) in the scene frame"""


def camera_caption(prompt: str, azimuth_deg: float) -> str:
    """A prompt as the camera at `azimuth_deg` sees it, for a CLIP trained on camera-frame captions
    (`camera_frame`; gen3d's reward prompt per view): a two-object prompt with a floor-plan relation becomes
    the world's canonical caption of its turned scene ("a red cube to the left of a blue sphere" seen from
    the back: "a red cube to the right of a blue sphere"); any other prompt, a stack, a single object or text
    outside the world's grammar, is the same from every side and comes back as written."""
    parsed = grammar.parse(prompt, _OBJ_RE, _REL_KEYWORDS)
    if parsed is None or parsed.relation not in _DIRECTION:
        return prompt
    dx, dz = _DIRECTION[parsed.relation]
    objects = tuple(Obj(o.colour, o.shape, o.size or "big", sign * SEPARATION * dx, sign * SEPARATION * dz)
                    for o, sign in zip(parsed.objects, (1.0, -1.0)))
    scene = Scene(objects, parsed.relation, tuple(o.size is not None for o in parsed.objects))
    return camera_frame(scene, azimuth_deg).caption()


def vocabulary() -> list[str]:
    """Every word (and the comma of a view suffix) that captions can use, sorted."""
    return grammar.vocabulary(set(COLOURS) | set(SHAPES) | set(SIZE_RANGES) | {"a", ","} | set(VIEWS) | {"view"},
                              _SINGLE_TEMPLATES, _RELATION_WORDS)


def allowed_pairs(split: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs of a split: 'train' (all but HELD_OUT), 'heldout' or 'all'."""
    return grammar.allowed_pairs(split, COLOURS, SHAPES, HELD_OUT)


def _draw_size(rng: random.Random) -> tuple[str, float]:
    size = rng.choice(tuple(SIZE_RANGES))
    return size, rng.uniform(*SIZE_RANGES[size])


def sample_scene(rng: random.Random, n_objects: int | None = None, split: str = "train") -> Scene:
    """Draw a random scene (1 or 2 objects when n_objects is None).

    As in the 2D world, split='heldout' makes the *first* object a held-out pair and the second a
    training pair (composition of a new pair with a known one); split='train' never shows a
    held-out pair. "on top of" stacks the first object on the second, which is then flat-topped.
    """
    pairs = allowed_pairs(split)
    train_pairs = allowed_pairs("train") if split == "heldout" else pairs
    n = n_objects if n_objects is not None else rng.choice((1, 2))
    if n not in (1, 2):
        raise ValueError(f"scenes hold 1 or 2 objects, got {n}")
    mention = tuple(rng.random() < 0.5 for _ in range(n))
    (s0, h0), (s1, h1) = _draw_size(rng), _draw_size(rng)
    c0, p0 = rng.choice(pairs)
    if n == 1:
        j = 0.15
        return Scene((Obj(c0, p0, s0, rng.uniform(-j, j), rng.uniform(-j, j), GROUND_Y, h0),), None,
                     mention)
    relation = rng.choice(RELATIONS)
    second = [p for p in train_pairs if p[0] != c0]  # differing colours keep stacks separable
    if relation == "on top of":
        second = [p for p in second if p[1] in FLAT_TOPPED]
    c1, p1 = rng.choice(second)
    if relation == "on top of":
        x, z = rng.uniform(-0.08, 0.08), rng.uniform(-0.08, 0.08)
        bottom = Obj(c1, p1, s1, x, z, GROUND_Y, h1)
        top = Obj(c0, p0, s0, x + rng.uniform(-0.03, 0.03), z + rng.uniform(-0.03, 0.03),
                  GROUND_Y + 2 * h1, h0)
        return Scene((top, bottom), relation, mention)
    layout = relation if relation != "and" else rng.choice(RELATIONS[:4])
    near = SEPARATION + rng.uniform(-0.03, 0.03)
    far = SEPARATION + rng.uniform(-0.03, 0.03)
    # signed position of object 0 / object 1 along the axis: "left of" puts object 0 at -x,
    # "in front of" at +z (towards the azimuth-0 camera)
    a0, a1 = (-near, far) if layout in ("left of", "behind") else (near, -far)
    q0, q1 = rng.uniform(-CROSS_JITTER, CROSS_JITTER), rng.uniform(-CROSS_JITTER, CROSS_JITTER)
    (x0, z0), (x1, z1) = ((a0, q0), (a1, q1)) if layout in ("left of", "right of") else ((q0, a0), (q1, a1))
    return Scene((Obj(c0, p0, s0, x0, z0, GROUND_Y, h0), Obj(c1, p1, s1, x1, z1, GROUND_Y, h1)),
                 relation, mention)


def shape_inside(shape: str, u, v, w):
    """Inside-test of a unit solid in local coordinates (u, w horizontal, v up, each in [-1, 1]).

    Written with arithmetic, comparisons and `&` only, so it works on numpy arrays and torch
    tensors alike; shared by the renderer's density field and the judge's shape fits.
    """
    if shape == "cube":
        return (abs(u) <= 1.0) & (abs(v) <= 1.0) & (abs(w) <= 1.0)
    if shape == "cylinder":
        return (u * u + w * w <= 1.0) & (abs(v) <= 1.0)
    if shape == "sphere":
        return u * u + v * v + w * w <= 1.0
    if shape == "cone":  # apex at v = 1, base disk of radius 1 at v = -1
        return (u * u + w * w <= 0.25 * (1.0 - v) * (1.0 - v)) & (abs(v) <= 1.0)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
