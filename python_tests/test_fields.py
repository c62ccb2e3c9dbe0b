"""Neural-field zoos (issue 6): procedural shapes, the occupancy network, batched fitting, meshing to points."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import weightmem_fast as wmf
from weightmem_fast import fields
from weightmem_fast.fields import mesh, occupancy
from weightmem_fast.io import load_zoo, save_zoo
from weightmem_fast.layout import ParamLayout

LAYOUT = ParamLayout.from_module(fields.OccupancyMLP())


def octahedron(radius: float) -> torch.Tensor:
    """[1, D] weights of the default OccupancyMLP whose logit is exactly radius - (|x| + |y| + |z|): the first layer
    reads the raw coordinates into relu(+-x), relu(+-y), relu(+-z), the hidden layers pass them on, the output
    subtracts their sum from the radius."""
    model = fields.OccupancyMLP()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for axis in range(3):
            model.net[0].weight[2 * axis, axis] = 1.0
            model.net[0].weight[2 * axis + 1, axis] = -1.0
        for index in (2, 4):
            model.net[index].weight[:6, :6] = torch.eye(6)
        model.net[6].weight[0, :6] = -1.0
        model.net[6].bias[0] = radius
    return LAYOUT.flatten(model.state_dict())


def constant(logit: float) -> torch.Tensor:
    """[1, D] weights whose logit is ``logit`` everywhere."""
    weights = torch.zeros(1, LAYOUT.size)
    weights[0, -1] = logit  # the output bias is the last entry of the layout
    return weights


# ---------------------------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(fields.FAMILIES))
def test_shapes_are_deterministic_per_seed_and_differ_across_seeds(family):
    assert fields.make_shape(family, 3) == fields.make_shape(family, 3)
    assert fields.make_shape(family, 3).primitives != fields.make_shape(family, 4).primitives
    # A base seed without jitter is exactly that base shape.
    assert fields.make_shape(family, 9, base_seed=3).primitives == fields.make_shape(family, 3).primitives


@pytest.mark.parametrize("family", sorted(fields.FAMILIES))
def test_shapes_fill_the_normalised_box_inside_the_unit_cube(family):
    for shape in fields.make_shapes(family, 20):
        lo = [min(p.center[i] - p.half_extent()[i] for p in shape.primitives) for i in range(3)]
        hi = [max(p.center[i] + p.half_extent()[i] for p in shape.primitives) for i in range(3)]
        assert max(b - a for a, b in zip(lo, hi)) == pytest.approx(fields.shapes.EXTENT)
        assert all(-0.475 - 1e-9 <= a and b <= 0.475 + 1e-9 for a, b in zip(lo, hi))
        # Nothing of the solid reaches the faces of the unit cube, and it has an inside.
        grid = fields.grid_points(33)
        inside = shape.occupancy(grid)
        assert not bool(inside[grid.abs().amax(dim=1) >= 0.48].any()) and bool(inside.any())


def test_primitive_distances_are_exact_where_known():
    points = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.4, 0.4, 0.0]])
    box = fields.Primitive("box", (0.0, 0.0, 0.0), (0.2, 0.3, 0.1))
    torch.testing.assert_close(box.sdf(points), torch.tensor([0.3, -0.1, math.hypot(0.2, 0.1)]))
    sphere = fields.Primitive("ellipsoid", (0.1, 0.0, 0.0), (0.2, 0.2, 0.2))  # the approximation is exact here
    torch.testing.assert_close(sphere.sdf(points), (points - torch.tensor([0.1, 0.0, 0.0])).norm(dim=1) - 0.2)
    capsule = fields.Primitive("capsule", (0.0, 0.0, 0.0), (0.3, 0.1, 0.1))  # axis segment x in [-0.2, 0.2]
    torch.testing.assert_close(capsule.sdf(points), torch.tensor([0.2, -0.1, math.hypot(0.2, 0.4) - 0.1]))
    turned = fields.Primitive("box", (0.0, 0.0, 0.0), (0.2, 0.3, 0.1), fields.primitives.rotation("z", math.pi / 2))
    torch.testing.assert_close(turned.sdf(points[:, [1, 0, 2]]), box.sdf(points))


@pytest.mark.slow  # meshes 16 shapes at 64^3 (about 3 s)
@pytest.mark.parametrize("family", sorted(fields.FAMILIES))
def test_near_duplicate_seeds_are_close_in_chamfer_and_other_seeds_are_not(family):
    originals = fields.make_shapes(family, 8)
    copies = [fields.make_shape(family, 100 + s, base_seed=s, jitter=0.01) for s in range(8)]
    clouds = fields.shape_points(originals + copies, resolution=64, n_points=2048).points
    distances = wmf.chamfer_matrix(clouds[8:], clouds[:8])  # copies x originals
    # Every copy is closer to its original than any copy is to another original (seen: airplanes 2.3e-4 at most
    # against 6.1e-4 at least, chairs 7.1e-4 against 1.7e-3; the copies' distances are mostly sampling noise).
    others = distances.masked_fill(torch.eye(8, dtype=torch.bool), float("inf"))
    assert float(distances.diagonal().max()) < float(others.min())


# ---------------------------------------------------------------------------------------------------------------
# The occupancy network
# ---------------------------------------------------------------------------------------------------------------

def test_positional_encoding_is_the_studys():
    points = torch.rand(50, 3) - 0.5
    expected = [points]
    for frequency in (1.0, 2.0, 4.0, 8.0):  # study_spec §1.1: [x, sin(x), cos(x), sin(2x), ..., cos(8x)] per block
        expected += [torch.sin(frequency * points), torch.cos(frequency * points)]
    encoded = fields.PositionalEncoding(4)(points)
    assert encoded.shape == (50, 27)
    torch.testing.assert_close(encoded, torch.cat(expected, dim=1), rtol=0, atol=0)


def test_occupancy_mlp_has_the_studys_layout_and_parameter_count():
    layout = ParamLayout.from_module(fields.OccupancyMLP(frequencies=4, hidden=128, layers=3))
    assert layout.size == 36737
    assert [e.shape for e in layout.entries] == [(128, 27), (128,), (128, 128), (128,), (128, 128), (128,),
                                                 (1, 128), (1,)]
    assert LAYOUT.size == 10177
    assert fields.OccupancyMLP.from_layout(layout).options() == {"frequencies": 4, "hidden": 128, "layers": 3}


def test_occupancy_logits_equal_each_models_forward(monkeypatch):
    models = [fields.OccupancyMLP(frequencies=2, hidden=16, layers=2) for _ in range(5)]
    layout = ParamLayout.from_module(models[0])
    weights = layout.flatten([m.state_dict() for m in models])
    points = torch.rand(301, 3) - 0.5
    with torch.no_grad():
        expected = torch.stack([m(points) for m in models])
    torch.testing.assert_close(fields.occupancy_logits(weights, layout, points), expected)
    monkeypatch.setattr(occupancy, "_CHUNK_ELEMENTS", 16 * 40)  # chunks of 1 model x 40 points
    torch.testing.assert_close(fields.occupancy_logits(weights, layout, points), expected)


# ---------------------------------------------------------------------------------------------------------------
# Meshing and surface points
# ---------------------------------------------------------------------------------------------------------------

def test_field_to_points_lands_on_an_analytic_surface():
    # An odd resolution puts the coordinate planes on the grid, so the field is linear in every tetrahedron and
    # marching tetrahedra reproduce the octahedron |x| + |y| + |z| = 0.35 up to float rounding.
    result = fields.field_to_points(octahedron(0.35), LAYOUT, resolution=33, n_points=4096, seed=1)
    assert result.status == ("ok",)
    points = result.points[0]
    assert float((points.abs().sum(dim=1) - 0.35).abs().max()) < 1e-5
    # Area weighting: the eight faces have equal areas, so each octant holds 1/8 of the points (5 sigma).
    octant = ((points > 0).long() * torch.tensor([4, 2, 1])).sum(dim=1)
    counts = torch.bincount(octant, minlength=8).double()
    assert float((counts - 512).abs().max()) < 5 * math.sqrt(4096 * (1 / 8) * (7 / 8))
    again = fields.field_to_points(octahedron(0.35), LAYOUT, resolution=33, n_points=4096, seed=1)
    assert torch.equal(again.points, result.points)


def test_sample_triangles_weights_by_area():
    triangles = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]],     # area 0.5
                              [[0.0, 0, 1], [3, 0, 1], [0, 1, 1]],     # area 1.5
                              [[0.0, 0, 2], [1, 0, 2], [2, 0, 2]]])    # area 0: never drawn
    points = fields.sample_triangles(triangles, 20000, np.random.default_rng(0))
    counts = torch.bincount(points[:, 2].round().long(), minlength=3)
    assert int(counts[2]) == 0
    assert abs(int(counts[1]) - 15000) < 5 * math.sqrt(20000 * 0.25 * 0.75)
    inside = points[points[:, 2] == 0]
    assert bool((inside[:, :2] >= 0).all()) and bool((inside[:, :2].sum(dim=1) <= 1 + 1e-6).all())


def test_fields_without_a_surface_are_reported_not_raised(monkeypatch):
    broken = octahedron(0.3)
    broken[0, 5] = float("nan")
    # logit |x| + |y| + |z|: inside everywhere but at the origin, a grid point exactly at the level, where the
    # surface shrinks to a point (zero area).
    pinhole = octahedron(0.0)
    pinhole[0, -65:-1] *= -1  # the output layer's weights (its bias, 0 here, is the last entry)
    weights = torch.cat([constant(-3.0), octahedron(0.3), constant(2.0), broken, pinhole])
    result = fields.field_to_points(weights, LAYOUT, resolution=17, n_points=64)
    assert result.status == ("empty", "ok", "full", "nonfinite", "degenerate")
    assert torch.equal(result.ok, torch.tensor([False, True, False, False, False]))
    assert result.failures == {0: "empty", 2: "full", 3: "nonfinite", 4: "degenerate"}
    assert bool(result.points[~result.ok].isnan().all()) and bool(result.points[result.ok].isfinite().all())
    # Each model's samples depend on the seed and its row, not on how models are chunked.
    monkeypatch.setattr(mesh, "_VOLUME_ELEMENTS", 1)
    chunked = fields.field_to_points(weights, LAYOUT, resolution=17, n_points=64)
    assert chunked.status == result.status and torch.equal(chunked.points[1], result.points[1])


def test_shape_points_lie_on_the_shapes():
    shapes = [fields.make_shape("airplane", 0), fields.make_shape("chair", 0)]
    result = fields.shape_points(shapes, resolution=48, n_points=512)
    assert result.status == ("ok", "ok") and result.points.shape == (2, 512, 3)
    step = 1 / 47
    for shape, points in zip(shapes, result.points):
        assert float(shape.sdf(points).abs().max()) < step


def test_normalize_clouds_centres_and_scales_each_cloud():
    clouds = torch.rand(3, 100, 3) * torch.tensor([1.0, 2.0, 3.0]) + 5
    normalised = fields.normalize_clouds(clouds)
    torch.testing.assert_close(normalised.mean(dim=1), torch.zeros(3, 3), rtol=0, atol=1e-5)
    torch.testing.assert_close(normalised.flatten(1).std(dim=1), torch.ones(3))
    manual = (clouds[1] - clouds[1].mean(dim=0)) / (clouds[1] - clouds[1].mean(dim=0)).std()
    torch.testing.assert_close(normalised[1], manual)


# ---------------------------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------------------------

def test_training_points_are_half_near_the_surface_with_exact_labels():
    shape = fields.make_shape("chair", 3)
    points, labels = fields.training_points(shape, 1000, 1000, np.random.default_rng(0))
    assert points.shape == (2000, 3) and torch.equal(labels, shape.occupancy(points).float())
    assert float(shape.sdf(points[:1000]).abs().max()) < 0.06  # the noise (sigma 0.01) plus a mesh step (1/63)
    assert bool((points[1000:].abs() <= 0.5).all()) and float(shape.sdf(points[1000:]).abs().median()) > 0.05
    again, _ = fields.training_points(shape, 1000, 1000, np.random.default_rng(0))
    assert torch.equal(again, points)


QUICK = {"steps": 12, "batch_size": 64, "samples": 512, "iou_resolution": 16, "progress": False}


def test_fitting_in_a_batch_equals_fitting_each_network_alone():
    shapes = [fields.make_shape("airplane", 1), fields.make_shape("chair", 2), fields.make_shape("airplane", 3)]
    together = fields.fit_fields(shapes, chunk=3, seed=7, **QUICK)
    alone = [fields.fit_fields([shape], seed=7 + i, **QUICK) for i, shape in enumerate(shapes)]
    # Nothing is shared but the batched GEMMs, whose sums may be ordered differently for another batch size: float
    # rounding only (worst seen: 4.5e-8 after 12 steps, 3.9e-8 after one).
    torch.testing.assert_close(together.weights, torch.cat([z.weights for z in alone]), rtol=0, atol=1e-6)
    assert [m["fit_seed"] for m in together.metadata] == [7, 8, 9]


def test_first_weights_starts_every_network_from_the_first_fit():
    shapes = [fields.make_shape("chair", 4), fields.make_shape("chair", 5)]
    first = fields.fit_fields(shapes[:1], **QUICK)
    zoo = fields.fit_fields(shapes, init="first_weights", **QUICK)
    from_tensor = fields.fit_fields(shapes, init=first.weights[0], **QUICK)
    assert torch.equal(zoo.weights, from_tensor.weights)
    assert zoo.metadata[0]["init"] == "first_weights" and from_tensor.metadata[0]["init"] == "tensor"


@pytest.fixture(scope="module")
def fitted():
    shapes = [fields.make_shape("airplane", 0), fields.make_shape("chair", 0)]
    return shapes, fields.fit_fields(shapes, progress=False)


@pytest.mark.slow  # fits two fields at the default size (a few seconds)
def test_fitted_fields_reproduce_their_shapes(fitted):
    shapes, zoo = fitted
    ious = [m["iou"] for m in zoo.metadata]  # on the default 32^3 grid
    assert min(ious) >= 0.8
    torch.testing.assert_close(fields.occupancy_iou(zoo.weights, zoo.layout, shapes, 32), torch.tensor(ious))
    assert float(fields.occupancy_iou(zoo.weights, zoo.layout, shapes, 64).min()) >= 0.8


@pytest.mark.slow  # uses the fitted fields
def test_fitted_zoo_round_trips_and_meshes_near_its_shapes(fitted, tmp_path):
    shapes, zoo = fitted
    assert zoo.layout == LAYOUT
    assert [(m["family"], m["shape_seed"], m["base_seed"]) for m in zoo.metadata] == [("airplane", 0, 0),
                                                                                       ("chair", 0, 0)]
    loaded = load_zoo(save_zoo(zoo, tmp_path / "zoo"))
    assert torch.equal(loaded.weights, zoo.weights) and loaded.metadata == zoo.metadata
    clouds = fields.field_to_points(loaded.weights, loaded.layout, resolution=48, n_points=512)
    truth = fields.shape_points(shapes, resolution=48, n_points=512)
    assert clouds.status == ("ok", "ok")
    distances = wmf.chamfer_matrix(clouds.points, truth.points)
    assert torch.equal(distances.argmin(dim=1), torch.arange(2))


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (lambda: fields.make_shape("boat", 0), ValueError, "family must be one of"),
    (lambda: fields.make_shape("chair", -1), ValueError, "seed must be an int >= 0"),
    (lambda: fields.make_shape("chair", 0, jitter=2.0), ValueError, "jitter must be a number in"),
    (lambda: fields.Primitive("cone", (0, 0, 0), (1, 1, 1)), ValueError, "kind must be one of"),
    (lambda: fields.Primitive("capsule", (0, 0, 0), (0.1, 0.2, 0.2)), ValueError, "half-length >= radius"),
    (lambda: fields.OccupancyMLP(hidden=0), ValueError, "hidden must be a positive int"),
    (lambda: fields.OccupancyMLP.from_layout(ParamLayout.from_named_tensors([("w", (3, 3))])), ValueError,
     "not that of an OccupancyMLP"),
    (lambda: fields.fit_fields([]), ValueError, "at least one Shape"),
    (lambda: fields.fit_fields(fields.make_shape("chair", 0)), TypeError, "sequence of Shape"),
    (lambda: fields.fit_fields(["chair"]), TypeError, r"shapes\[0\] must be a Shape"),
    (lambda: fields.fit_fields(fields.make_shapes("chair", 1), samples=99), ValueError, "samples must be even"),
    (lambda: fields.fit_fields(fields.make_shapes("chair", 1), init="zeros"), ValueError, "init must be one of"),
    (lambda: fields.fit_fields(fields.make_shapes("chair", 1), init=torch.zeros(5)), ValueError,
     r"init must be one flat network \[10177\]"),
    (lambda: fields.field_to_points(torch.zeros(2, 10), LAYOUT), ValueError, r"weights must be \[N, 10177\]"),
    (lambda: fields.field_to_points(torch.zeros(2, LAYOUT.size, dtype=torch.float64), LAYOUT), TypeError,
     "weights must be float32"),
    (lambda: fields.field_to_points(constant(1.0), LAYOUT, resolution=1), ValueError, "resolution must be an int"),
    (lambda: fields.field_to_points(constant(1.0), LAYOUT, n_points=0), ValueError, "n_points must be an int"),
    (lambda: fields.field_to_points(constant(1.0), LAYOUT, level=float("nan")), ValueError,
     "level must be a finite number"),
    (lambda: fields.occupancy_logits(constant(1.0), LAYOUT, torch.zeros(4, 2)), ValueError,
     r"points must be a tensor \[P, 3\]"),
    (lambda: fields.shape_points(["chair"]), TypeError, r"shapes\[0\] must be a Shape"),
    (lambda: fields.normalize_clouds(torch.zeros(5, 3)), ValueError, r"points must be a tensor \[N, P, 3\]"),
    (lambda: fields.isosurface(torch.zeros(4, 4, 5), 0.0), ValueError, r"volume must be a cubic tensor"),
    (lambda: fields.sample_triangles(torch.zeros(2, 3, 3), 5, np.random.default_rng(0)), ValueError,
     "positive total area"),
]


@pytest.mark.parametrize("call, error, message", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
