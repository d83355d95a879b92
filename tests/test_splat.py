"""The Gaussian rasteriser (render/splat.py) against analytic scenes, finite differences, the volume
renderer, and (on CUDA) gsplat."""

import math

import pytest
import torch

from rewardsds.render import (
    RenderOutput,
    SolidBackground,
    StratifiedSampler,
    VolumeRenderer,
    orbit_cameras,
    project,
    sample_orbit_cameras,
)
from rewardsds.render.cameras import focal_length
from rewardsds.render.splat import EPS2D, SplatRenderer, Splats, covariances, rasterize, resolve_backend

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def splats(means, scale, opacity, colors, quats=None, dtype=torch.float32):
    means = torch.as_tensor(means, dtype=dtype).view(-1, 3)
    n = means.shape[0]
    scales = torch.as_tensor(scale, dtype=dtype).expand(n, 3) if torch.as_tensor(scale).dim() < 2 else \
        torch.as_tensor(scale, dtype=dtype)
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=dtype).repeat(n, 1) if quats is None else \
        torch.as_tensor(quats, dtype=dtype)
    return Splats(means, q, scales.clone(), torch.as_tensor(opacity, dtype=dtype).expand(n).clone(),
                  torch.as_tensor(colors, dtype=dtype).view(-1, 3).expand(n, 3).clone())


def test_one_gaussian_peaks_at_its_projection_with_the_closed_form_radius():
    """A centred isotropic Gaussian of std s at depth z: alpha(r) = o exp(-r^2 / 2 sigma^2) with
    sigma^2 = (f s / z)^2 + eps2d (EWA: J W Sigma W^T J^T + the 0.3 px^2 dilation)."""
    w = 33  # odd: the image centre (16.5) is a pixel centre
    cam = orbit_cameras(0.0, 0.0, 3.0, 50.0)
    s, o = 0.1, 0.5
    out = rasterize(splats([0, 0, 0], s, o, RED), cam, w, w, background=SolidBackground((0, 0, 0)))
    assert isinstance(out, RenderOutput)
    a = out.opacity[0, 0].double()
    assert a.argmax() == 16 * w + 16 and math.isclose(a[16, 16], o, rel_tol=1e-6)
    sigma = math.sqrt((focal_length(torch.tensor(50.0), w).item() * s / 3.0) ** 2 + EPS2D)
    for k in (1, 2, 3):  # the 1-sigma radius measured from the falloff along a row and a column
        for ak in (a[16, 16 + k], a[16 - k, 16]):
            assert math.isclose(k / math.sqrt(2 * math.log(a[16, 16] / ak)), sigma, rel_tol=1e-4)
    assert torch.allclose(out.image[0, 0], out.opacity[0, 0])  # red on black: the red channel is alpha
    assert math.isclose(out.depth[0, 0, 16, 16].item(), 3.0, rel_tol=1e-5)

    # an off-centre Gaussian: the footprint's centroid is the projected mean (cameras.project)
    cam = orbit_cameras(20.0, 35.0, 2.8, 45.0)
    mean = torch.tensor([[0.25, -0.15, 0.1]])
    a = rasterize(splats(mean, 0.08, 0.6, RED), cam, 40, 40).opacity[0, 0].double()
    uv = project(mean[None], cam, 40, 40)[0, 0, :2].double()
    jj, ii = torch.meshgrid(torch.arange(40.0, dtype=torch.float64) + 0.5,
                            torch.arange(40.0, dtype=torch.float64) + 0.5, indexing="xy")
    centroid = torch.stack([(a * jj).sum(), (a * ii).sum()]) / a.sum()
    assert torch.allclose(centroid, uv, atol=0.02), (centroid, uv)
    peak = divmod(int(a.argmax()), 40)
    assert peak == (int(uv[1]), int(uv[0]))


def test_the_nearer_gaussian_occludes_the_farther():
    cam = orbit_cameras(0.0, 0.0, 3.0, 50.0)  # looking along -z from +z: larger z is nearer
    o1, o2 = 0.8, 0.7
    near_red = splats([[0, 0, 0.5], [0, 0, -0.5]], 0.1, torch.tensor([o1, o2]), torch.tensor([RED, BLUE]))
    out = rasterize(near_red, cam, 33, 33, background=SolidBackground((0, 0, 0)))
    centre = out.foreground[0, :, 16, 16]
    want = torch.tensor(RED) * o1 + (1 - o1) * o2 * torch.tensor(BLUE)  # front to back, T = 1 - o1
    assert torch.allclose(centre, want, atol=1e-6)
    assert math.isclose(out.opacity[0, 0, 16, 16].item(), 1 - (1 - o1) * (1 - o2), rel_tol=1e-6)
    # the input order does not matter: the rasteriser sorts by depth
    flipped = Splats(*(x.flip(0) for x in (near_red.means, near_red.quats, near_red.scales, near_red.opacities,
                                           near_red.colors)))
    assert torch.allclose(rasterize(flipped, cam, 33, 33).image, rasterize(near_red, cam, 33, 33).image)
    # seen from behind, blue is in front
    back = rasterize(near_red, orbit_cameras(0.0, 180.0, 3.0, 50.0), 33, 33).foreground[0, :, 16, 16]
    assert back[2] > back[0] and torch.allclose(back, torch.tensor(BLUE) * o2 + (1 - o2) * o1 * torch.tensor(RED),
                                                atol=1e-6)


def test_gradients_match_finite_differences():
    """torch.autograd.gradcheck in float64 on 3 anisotropic, rotated, overlapping Gaussians (every
    parameter, through projection, sorting, compositing and the background)."""
    cam = orbit_cameras(10.0, 20.0, 2.5, 50.0)
    g = torch.Generator().manual_seed(0)
    d = torch.float64
    means = (torch.rand(3, 3, generator=g, dtype=d) - 0.5) * 0.3
    quats = torch.randn(3, 4, generator=g, dtype=d)
    scales = 0.08 + 0.08 * torch.rand(3, 3, generator=g, dtype=d)
    opac = torch.tensor([0.7, 0.5, 0.6], dtype=d)
    colors = torch.rand(3, 3, generator=g, dtype=d)
    bg = SolidBackground((0.2, 0.3, 0.4))

    def render(m, q, s, o, c):
        out = rasterize(Splats(m, q, s, o, c), cam, 10, 10, background=bg, backend="reference")
        return out.image, out.opacity, out.depth

    inputs = tuple(x.clone().requires_grad_(True) for x in (means, quats, scales, opac, colors))
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_agrees_with_the_volume_renderer_on_an_isotropic_blob():
    """One isotropic Gaussian (std s, opacity o) against a volume of the same density, rendered by
    `VolumeRenderer`: sigma(x) = k exp(-|x|^2 / 2 s^2) with k = o / (s sqrt(2 pi)), i.e. the optical depth
    through the centre equals the opacity.

    The fair comparison: along a ray with impact parameter b the volume's optical depth is
    tau(b) = o g(b), g = exp(-b^2 / 2 s^2), so its opacity is 1 - exp(-o g), while the splat's is o g
    (splatting is the optically thin, first-order form of the same absorption). Pixel for pixel, then,
    opacity_volume = 1 - exp(-opacity_splat) whatever the geometry - which tests the footprint (EWA's affine
    projection against exact perspective rays, quadrature) to 1e-3 where alpha >= 1/255 - and the two differ by at most
    o - (1 - e^-o) = 0.019 (at the centre). Silhouettes (opacity >= o / 10) agree to IoU 0.98. The 0.3 px^2
    dilation is a screen-space filter without a volume counterpart, so it is off here (eps2d=0)."""
    s, o, res = 0.15, 0.2, 48
    k = o / (s * math.sqrt(2 * math.pi))

    def blob(p):
        return k * torch.exp(-(p * p).sum(-1) / (2 * s * s)), torch.ones_like(p)

    cams = orbit_cameras([0.0, 30.0], [0.0, 70.0], [3.0, 2.6], [40.0, 50.0])
    black = SolidBackground((0, 0, 0))
    vol = VolumeRenderer(StratifiedSampler(512, 1.0, stratified=False), black)(blob, cams, res, res).opacity
    spl = rasterize(splats([0, 0, 0], s, o, (1.0, 1.0, 1.0)), cams, res, res, background=black, eps2d=0.0).opacity
    drawn = spl > 0  # the splat skips alpha < 1/255 (as gsplat does): there the volume is that faint too
    assert (vol - (1 - torch.exp(-spl)))[drawn].abs().max() < 1e-3
    assert vol[~drawn].max() < 1 / 255 + 1e-3
    assert (vol - spl).abs().max() < o - (1 - math.exp(-o)) + 1e-3
    a, b = vol >= o / 10, spl >= o / 10
    iou = float((a & b).sum() / (a | b).sum())
    assert iou > 0.98 and a[0].sum() > 100, iou


def test_renderer_module_is_called_like_the_volume_renderer():
    model = splats(torch.zeros(1, 3), 0.2, 0.9, RED)
    r = SplatRenderer(SolidBackground((0.0, 1.0, 0.0)), backend="reference")
    cams = sample_orbit_cameras(3, generator=torch.Generator().manual_seed(0))
    out = r(model, cams, 16, 16, shading=False)
    assert out.image.shape == (3, 3, 16, 16) and out.opacity.shape == out.depth.shape == (3, 1, 16, 16)
    assert out.means2d.shape == (3, 1, 2) and (out.radii > 0).all()
    corner = out.image[:, :, 0, 0]  # far from the blob: the background
    assert torch.allclose(corner, torch.tensor([0.0, 1.0, 0.0]).expand(3, 3), atol=1e-6)
    assert torch.allclose(out.image, out.foreground + (1 - out.opacity) * torch.tensor([0.0, 1.0, 0.0])[:, None, None])
    with pytest.raises(ValueError, match="shading"):
        r(model, cams, 16, 16, shading=True)
    # a Gaussian behind the camera or transparent draws nothing
    nothing = rasterize(splats([[0, 0, 5.0], [0, 0, 0]], 0.1, torch.tensor([0.9, 0.001]), RED),
                        orbit_cameras(0.0, 0.0, 3.0, 50.0), 16, 16)
    assert float(nothing.opacity.max()) == 0.0 and (nothing.radii == 0).all()


def test_covariance_is_rotated_scale():
    q = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1, -0.3, 0.2]]), dim=-1)
    s = torch.tensor([[0.1, 0.2, 0.3]])
    cov = covariances(q, s)[0]
    assert torch.allclose(torch.linalg.eigvalsh(cov), (s[0] ** 2).sort().values, atol=1e-6)


def test_cpu_never_imports_gsplat_and_asking_for_it_fails_loudly():
    import sys

    cam = orbit_cameras(0.0, 0.0, 3.0, 50.0)
    rasterize(splats([0, 0, 0], 0.1, 0.5, RED), cam, 8, 8)  # auto on the CPU: the reference
    assert resolve_backend("auto", torch.device("cpu")) == "reference" and "gsplat" not in sys.modules
    with pytest.raises((ImportError, ValueError), match=r"gsplat|CUDA"):  # not installed, or CPU tensors
        rasterize(splats([0, 0, 0], 0.1, 0.5, RED), cam, 8, 8, backend="gsplat")


@pytest.mark.gpu
def test_reference_and_gsplat_agree():
    """Same image, opacity and positional gradient from both backends on a random 300-Gaussian scene.
    gsplat culls at 3 (or 3.33) sigma with tiles where the reference's cut is exactly alpha = 1/255, so
    isolated pixels may differ by about o exp(-4.5) < 0.011."""
    pytest.importorskip("gsplat")
    g = torch.Generator().manual_seed(0)
    n = 300
    means = ((torch.rand(n, 3, generator=g) - 0.5) * 0.8).cuda().requires_grad_(True)
    quats = torch.randn(n, 4, generator=g).cuda()
    scales = (0.02 + 0.06 * torch.rand(n, 3, generator=g)).cuda()
    opac = (0.1 + 0.8 * torch.rand(n, generator=g)).cuda()
    colors = torch.rand(n, 3, generator=g).cuda()
    cams = sample_orbit_cameras(2, generator=g).to("cuda")
    weight = torch.rand(2, 3, 64, 64, generator=g).cuda()
    outs, grads = [], []
    for backend in ("reference", "gsplat"):
        out = rasterize(Splats(means, quats, scales, opac, colors), cams, 64, 64, backend=backend)
        (grad,) = torch.autograd.grad((out.image * weight).sum(), means)
        outs.append(out)
        grads.append(grad)
    ref, gs = outs
    assert (ref.image - gs.image).abs().max() < 2e-2
    assert (ref.image - gs.image).abs().mean() < 3e-3
    assert (ref.opacity - gs.opacity).abs().mean() < 3e-3
    cos = torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0)
    assert cos > 0.99, float(cos)
