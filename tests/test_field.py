"""The radiance field: initial blob, ranges, gradients, checkpoints, and that it can be fitted."""

import pytest
import torch

from rewardsds.render import SolidBackground, StratifiedSampler, VolumeRenderer, orbit_cameras
from rewardsds.representations.field import FieldConfig, RadianceField, query_grid


def small(**kw):
    return RadianceField(FieldConfig(resolutions=(8, 16), features=2, hidden=16, **kw),
                         generator=torch.Generator().manual_seed(0))


def test_initial_field_is_a_centred_blob():
    f = small()
    sigma, rgb = f(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.0, 0.3, 0.0], [0.0, 0.7, 0.0]]))
    assert sigma[0] > 5 and sigma[1] < 1e-2 and sigma[2] > sigma[3]
    assert ((rgb > 0) & (rgb < 1)).all()
    r = VolumeRenderer(StratifiedSampler(32, stratified=False))
    out = r(f, orbit_cameras(0.0, 0.0, 2.75, 50.0), 16, 16)
    assert out.opacity[0, 0, 7:9, 7:9].min() > 0.9 and out.opacity[0, 0, 0, 0] < 1e-3


def test_density_is_zero_outside_the_box_and_nonnegative():
    f = small(density_activation="exp", bound=0.8)
    p = torch.randn(500, 3)
    sigma, rgb = f(p)
    assert sigma.shape == (500,) and rgb.shape == (500, 3)
    assert (sigma >= 0).all() and (sigma[(p.abs() > 0.8).any(-1)] == 0).all()


def test_gradient_reaches_every_parameter():
    f = small()
    r = VolumeRenderer(StratifiedSampler(16))
    cams = orbit_cameras(20.0, [0.0, 180.0], 2.75, 50.0)
    out = r(f, cams, 12, 12, generator=torch.Generator().manual_seed(0))
    (out.image - 0.3).square().mean().backward()
    for name, p in f.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_checkpoint_round_trip_and_query_grid():
    f = small()
    g = RadianceField.from_checkpoint(f.to_checkpoint())
    p = torch.rand(64, 3) * 2 - 1
    assert torch.equal(f(p)[0], g(p)[0])
    vol = query_grid(g.density, 1.0, 9)
    assert vol.shape == (9, 9, 9)
    assert vol[4, 4, 4] == vol.max()  # the blob peaks at the centre of the lattice
    assert torch.allclose(vol[4, 4, 4], g.density(torch.zeros(1, 3))[0])


def test_fits_a_target_colour():
    f = small()
    r = VolumeRenderer(StratifiedSampler(16), SolidBackground((1, 1, 1)))
    opt = torch.optim.Adam(f.param_groups(1e-1))
    cams = orbit_cameras(15.0, [0.0, 120.0, 240.0], 2.75, 50.0)
    gen = torch.Generator().manual_seed(0)
    target = torch.tensor([0.1, 0.6, 0.2]).view(1, 3, 1, 1)
    with torch.no_grad():  # the blob's silhouette, fixed, so the fit cannot just fade the object
        mask = (r(f, cams, 12, 12).opacity > 0.5).float()
    losses = []
    for _ in range(15):
        out = r(f, cams, 12, 12, generator=gen)
        loss = ((out.image - target).square() * mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_rejects_bad_config():
    with pytest.raises(ValueError):
        FieldConfig(resolutions=(1,))
    with pytest.raises(ValueError):
        FieldConfig(density_activation="relu")
