"""The 2.5D graph's geometry on hand-built point sets and depth maps, and registration."""

import math

import numpy as np
import pytest

from pipeline.depth.register import background_mask, box_depth, register
from pipeline.graphs.geometry import (
    Asmp25dParams,
    backproject,
    chamfer,
    focal,
    graph_geometry,
    pairwise_chamfer,
    rbf_weights,
)


def test_chamfer_of_equal_disjoint_and_single_point_sets():
    a = np.array([[0.0, 0, 0], [1, 0, 0], [0, 2, 0]])
    assert chamfer(a, a) == 0.0
    assert chamfer(a[:1], a[:1] + [3, 4, 0]) == pytest.approx(5.0)  # one point each
    b = np.array([[0.0, 0, 3]])
    # a -> b: each point's distance to the one point; b -> a: 3 (to the origin)
    forward = (3 + math.sqrt(10) + math.sqrt(13)) / 3
    assert chamfer(a, b) == pytest.approx((forward + 3) / 2)
    assert chamfer(a, b) == chamfer(b, a)
    assert math.isnan(chamfer(a, np.zeros((0, 3))))
    d = pairwise_chamfer([a, b, np.zeros((0, 3))])
    assert d[0, 1] == d[1, 0] == chamfer(a, b) and np.all(np.diag(d) == 0)
    assert np.isnan(d[0, 2]) and np.isnan(d[2, 1])


def test_rbf_weights_follow_the_released_rule_and_are_never_nan():
    d = np.array([[0.0, 1, 2], [1, 0, 4], [2, 4, 0]])
    w = rbf_weights(d, 50.0, "normalised")
    p = np.median([1, 2, 4, 1, 2, 4]) / 4  # the percentile of D / D_max
    assert w[0, 1] == pytest.approx(math.exp(-(1 / 4) / p))
    assert np.all(np.diag(w) == 1) and np.allclose(w, w.T)
    assert w[1, 2] < w[0, 2] < w[0, 1]  # nearer, heavier
    # the released code's percentile of the raw distances (here 2, not 0.5)
    ref = rbf_weights(d, 50.0, "reference")
    assert ref[0, 1] == pytest.approx(math.exp(-(1 / 4) / 2.0))
    assert not np.allclose(w, ref)
    # unknown distances weigh 0; no distance at all weighs every edge 1
    d[0, 2] = d[2, 0] = np.nan
    w = rbf_weights(d, 50.0, "normalised")
    assert not np.isnan(w).any() and w[0, 2] == 0 and w[0, 0] == 1
    assert np.all(rbf_weights(np.full((3, 3), np.nan), 50.0, "normalised") == 1)
    assert np.all(rbf_weights(np.zeros((2, 2)), 50.0, "normalised") == 1)  # one place


def test_backprojection_of_a_known_plane():
    size, fov = 256, 90.0
    f = focal(size, fov)
    assert f == pytest.approx(128.0)
    flat = np.full((64, 64), 2.0)
    pts = backproject(flat, np.array([0, 0, 256, 256]), size, fov, 4)
    assert pts.shape == (16, 3) and np.all(pts[:, 2] == 2.0)
    u = np.array([32, 96, 160, 224])  # cell centres of a 4 x 4 grid over the frame
    np.testing.assert_allclose(np.unique(pts[:, 0]), (u - 128) * 2.0 / f)
    # a tilted plane: inverse depth linear in the pixel -> the points lie on one 3D plane
    v = (np.arange(64) + 0.5) * size / 64
    inverse = 0.5 + 0.25 * v / size
    tilted = np.repeat((1 / inverse)[:, None], 64, axis=1)
    pts = backproject(tilted, np.array([40, 20, 200, 230]), size, fov, 6)
    centred = pts - pts.mean(0)
    singular = np.linalg.svd(centred, compute_uv=False)
    assert singular[-1] < 1e-6 * singular[0] + 0.02  # flat up to the map's pixel steps
    assert np.ptp(pts[:, 2]) > 0.3  # and it is tilted
    # missing depth is left out, never NaN
    holes = flat.copy()
    holes[:32] = np.nan
    pts = backproject(holes, np.array([0, 0, 256, 256]), size, fov, 4)
    assert pts.shape == (8, 3) and np.isfinite(pts).all()


def test_graph_geometry_without_depth_is_nan_free_where_it_matters():
    boxes = np.array([[0, 0, 50, 50], [100, 100, 150, 150], [10, 10, 40, 40]], np.float32)
    frames = np.zeros(3, int)
    none = graph_geometry(boxes, frames, None, 256, Asmp25dParams())
    assert np.all(none["weight"] == 1) and np.isnan(none["distance"]).all()
    assert none["weight"].shape == (6,) and np.isnan(none["pos"]).all()
    depth = np.full((1, 64, 64), 2.0)
    depth[0, :20, :20] = 1.0  # the first and third boxes are nearer
    g = graph_geometry(boxes, frames, depth, 256, Asmp25dParams(points=4))
    assert np.isfinite(g["weight"]).all() and np.isfinite(g["distance"]).all()
    assert g["pos"][0, 2] == 1.0 and g["pos"][1, 2] == 2.0
    # complete_edges order: 0->1, 0->2, 1->0, 1->2, 2->0, 2->1; boxes 0 and 2 are nearest
    assert g["distance"][1] == g["distance"][4] == g["distance"].min()
    assert g["weight"][1] == g["weight"].max()


def test_registration_undoes_a_scale_and_shift_per_frame():
    rng = np.random.default_rng(0)
    truth = 1.0 + rng.uniform(0, 5, size=(1, 16, 16)).repeat(5, 0)  # a static depth
    disparity = 1.0 / truth
    scale = np.array([1.0, 0.5, 2.0, 1.5, 0.7])[:, None, None]
    shift = np.array([0.0, 0.1, -0.05, 0.2, 0.0])[:, None, None]
    maps = disparity * scale + shift
    maps[1, :4, :4] = 9.0  # an object in one frame: in a box, so not fitted
    boxes = np.zeros((5, 1, 4), np.float32)
    boxes[1, 0] = [0, 0, 60, 60]  # covers the first 4 x 4 map pixels of a 256 px frame
    counts = np.array([0, 1, 0, 0, 0])
    free = background_mask(boxes, counts, 256, 16)
    assert not free[1, :3, :3].any() and free[1, 8:, 8:].all() and free[0].all()
    z, fit = register(maps, free, "disparity", disparity_range=6.0)
    np.testing.assert_allclose(fit[:, 0] * scale[:, 0, 0], scale[2, 0, 0], rtol=1e-5)
    for t in (0, 3, 4):
        np.testing.assert_allclose(z[t], z[2], rtol=1e-4)
    # depth order is the truth's; the range is the prior's
    rank = lambda a: np.argsort(np.argsort(a.ravel()))  # noqa: E731
    assert np.corrcoef(rank(z[2]), rank(truth[2]))[0, 1] > 0.99
    assert z.min() >= 1.0 - 1e-5 and z.max() <= 6.0 + 1e-4
    # per-box medians: the box's own pixels
    bd = box_depth(z, boxes, counts, 256)
    assert np.isnan(bd[0, 0]) and bd[1, 0] == pytest.approx(np.median(z[1, :4, :4]))
    # a backend giving depth keeps its unit
    z, fit = register(truth * scale, np.ones_like(free), "depth", 6.0)
    np.testing.assert_allclose(z, np.broadcast_to(truth[2] * scale[2], z.shape), rtol=1e-4)
