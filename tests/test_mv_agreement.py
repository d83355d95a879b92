"""The multi-view gate: the 2D readings of the 4 views of a sample must agree (`world3d.agreement`), printed by
`python -m rewardsds.world3d.evaluate_mv`. Exact multi-view renders pass, views of different scenes fail."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _builders import build_tiny_multiview_prior

from rewardsds.render import orbit_cameras
from rewardsds.world3d.agreement import orbit_angles, views_agree
from rewardsds.world3d.data import sample_view_sets
from rewardsds.world3d.evaluate_mv import MV_GATE, agreement_rate, main


@pytest.fixture(scope="module")
def sets():
    images, captions, scenes, c2w = sample_view_sets(3, 30, 32)
    return torch.from_numpy(images), captions, scenes, c2w


def test_orbit_angles_invert_the_orbit_cameras():
    cams = orbit_cameras([0.0, 30.0, 60.0], [0.0, 90.0, -135.0], [3.0, 2.5, 3.0], 45.0)
    az, el = orbit_angles(cams.c2w)
    np.testing.assert_allclose(az, [0.0, 90.0, -135.0], atol=1e-4)
    np.testing.assert_allclose(el, [0.0, 30.0, 60.0], atol=1e-4)


def test_exact_multiview_renders_agree(sets):
    images, captions, _, c2w = sets
    assert agreement_rate(images, captions, c2w, 4) >= 0.9 > MV_GATE


def test_views_of_different_scenes_do_not(sets):
    images, captions, _, c2w = sets
    n = len(captions)
    rows = torch.tensor([4 * ((i + v) % n) + v for i in range(n) for v in range(4)])  # view v from scene i + v
    assert agreement_rate(images[rows], captions, c2w[rows], 4) <= 0.1


def test_a_mirrored_opposite_view_breaks_the_left_right_order(sets):
    """Flipping the back view left-right keeps every object and colour but puts the two objects in the order of
    the front view, which no scene shows from behind."""
    images, captions, _, c2w = sets
    asked = 0
    for i, cap in enumerate(captions):
        views, cams = images[4 * i:4 * i + 4].clone(), c2w[4 * i:4 * i + 4]
        exact = views_agree(views.numpy(), cap, cams)
        r0, r2 = exact.readings[0].segments, exact.readings[2].segments
        if len(r0) != 2 or not exact.agrees or any(s.shape is None for s in r0 + r2) or \
                min(abs(r0[0].cx - r0[1].cx), abs(r2[0].cx - r2[1].cx)) < 0.1:
            continue
        views[2] = views[2].flip(-1)
        mirrored = views_agree(views.numpy(), cap, cams)
        assert mirrored.objects and mirrored.colours and not mirrored.left_right and not mirrored.agrees
        asked += 1
    assert asked >= 2


def test_the_command_prints_the_gate(tmp_path, capsys):
    folder = build_tiny_multiview_prior(tmp_path / "mv")
    out = tmp_path / "gate.json"
    code = main(["--prior", str(folder), "--samples", "3", "--batch", "2", "--steps", "2", "--threads", "1",
                 "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "multi-view agreement" in printed and ("met" in printed)
    figures = json.loads(out.read_text())
    assert 0.0 <= figures["agreement"] <= 1.0 and figures["gate"]["threshold"] == MV_GATE


def test_the_command_without_weights_is_one_line(tmp_path, capsys):
    code = main(["--prior", str(tmp_path / "none")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "rewardsds.world3d.train.mvprior" in err
