"""``fit_fields``: one occupancy network per shape, many fitted at once, as a zoo (issue 6; study_spec §5.1).

As HyperDiffusion overfits its MLPs: BCE-with-logits on the occupancy of near-surface and uniform points, Adam. Up
to ``chunk`` networks train as one ``StackedModel`` (stacked weights, one batched forward and backward); each has
its own points, batches and initialisation from its own seed, and nothing mixes networks (the summed loss gives
each its own gradient; Adam is elementwise; the learning-rate schedule depends on the step alone), so a network's
result does not depend on which others share its chunk.

Where this differs from the study, for a zoo on 2 CPU cores: a 64-wide network (``hidden=128`` is the study's),
16,384 points per shape instead of 200,000, 1,600 steps of 512 points instead of up to 5,000 epochs of 2,048, a
cosine learning-rate decay instead of ReduceLROnPlateau (whose per-network plateaus would need per-network rates),
and each network initialised from its own seed unless ``init="first_weights"`` (the study's choice) is asked for.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..io import Zoo
from ..layout import ParamLayout
from ..zoo.loop import check_float, check_int
from ..zoo.stacked import StackedModel
from .mesh import grid_points
from .occupancy import OccupancyMLP, check_weights, occupancy_logits
from .samples import training_points
from .shapes import Shape

INITS = ("random", "first_weights")


def fit_fields(
    shapes: Sequence[Shape],
    *,
    steps: int = 1600,
    batch_size: int = 512,
    lr: float = 5e-3,
    samples: int = 16384,
    frequencies: int = 4,
    hidden: int = 64,
    layers: int = 3,
    seed: int = 0,
    init: str | torch.Tensor = "random",
    chunk: int = 64,
    iou_resolution: int = 32,
    progress: bool = True,
) -> Zoo:
    """Fits one ``OccupancyMLP`` to each shape, on the CPU.

    Network i has seed ``seed + i``: it seeds the initial weights (``torch.manual_seed`` then the constructor, on a
    forked generator), the training points (``np.random.default_rng([seed + i, 0])``) and the batches (a
    ``torch.Generator`` seeded with it). Results do not depend on ``chunk`` up to float rounding (module docstring).

    Args:
        shapes: N >= 1 shapes (``make_shape``).
        steps: Adam steps per network.
        batch_size: points per step and network, drawn with replacement from its training points.
        lr: the initial learning rate; it decays to 0 along a half cosine over ``steps``.
        samples: training points per shape, half near the surface and half uniform (``samples.training_points``).
        frequencies, hidden, layers: the network (``OccupancyMLP``).
        seed: network 0's seed.
        init: "random" (each network from its seed); "first_weights" (the study's strategy: fit shape 0 from its
            seed first, then start every network, shape 0's included, from that fit, which keeps the networks
            aligned); or a tensor [D] of flat weights every network starts from.
        chunk: networks fitted together at most (memory grows with chunk * batch_size * hidden).
        iou_resolution: grid points per axis of the IoU check over [-0.5, 0.5]^3 (32 by default: at 64 the check
            costs a fifth of the fit; ``occupancy_iou`` measures any resolution afterwards).
        progress: show a tqdm bar (network-steps).

    Returns:
        Zoo [N, D] in ``ParamLayout.from_module(OccupancyMLP(frequencies, hidden, layers))``, rows in shape order.
        Metadata per row: the shape's ``family``, ``shape_seed``, ``base_seed`` and ``jitter``; ``arch``
        ("occupancy_mlp") and ``arch_kwargs``; ``fit_seed``, ``steps``, ``lr``, ``batch_size``, ``samples``,
        ``init``; ``loss`` (mean BCE of the last batch) and ``iou``: the fit's occupancy IoU with the shape on
        the grid (inside: logit > 0 and signed distance < 0).

    Raises:
        TypeError: an element of ``shapes`` that is not a Shape, or an ``init`` tensor that is not float32.
        ValueError: no shapes, a non-positive count or rate, an odd or too small ``samples``, an unknown ``init``
            or an ``init`` tensor not of shape [D].
    """
    shapes = _check_shapes(shapes)
    steps, batch_size, chunk = check_int("steps", steps), check_int("batch_size", batch_size), check_int("chunk", chunk)
    samples, seed = check_int("samples", samples, 2), check_int("seed", seed, 0)
    iou_resolution, lr = check_int("iou_resolution", iou_resolution, 2), check_float("lr", lr)
    if samples % 2:
        raise ValueError(f"samples must be even (half near the surface, half uniform); got {samples}")
    template = OccupancyMLP(frequencies, hidden, layers)
    layout = ParamLayout.from_module(template)
    seeds = [seed + i for i in range(len(shapes))]
    starts = _initial_weights(init, template, layout, shapes, seeds, steps, batch_size, lr, samples, progress)
    with tqdm(total=len(shapes) * steps, unit="network-step", disable=not progress, desc="fitting fields") as bar:
        fitted = [_fit_chunk(template, shapes[a : a + chunk], starts[a : a + chunk], seeds[a : a + chunk], steps,
                             batch_size, lr, samples, bar.update)
                  for a in range(0, len(shapes), chunk)]
    weights = torch.cat([w for w, _ in fitted])
    losses = torch.cat([loss for _, loss in fitted])
    ious = occupancy_iou(weights, layout, shapes, iou_resolution)
    settings = {"arch": "occupancy_mlp", "arch_kwargs": template.options(), "steps": steps, "lr": lr,
                "batch_size": batch_size, "samples": samples, "init": init if isinstance(init, str) else "tensor"}
    metadata = [_shape_metadata(shape) | settings | {"fit_seed": s, "loss": float(loss), "iou": float(iou)}
                for shape, s, loss, iou in zip(shapes, seeds, losses, ious)]
    return Zoo(weights, layout, metadata)


def occupancy_iou(weights: torch.Tensor, layout: ParamLayout, shapes: Sequence[Shape],
                  resolution: int = 64) -> torch.Tensor:
    """[N] IoU of each field's occupancy (logit > 0) with its shape's (signed distance < 0) on the
    ``resolution``^3 grid over [-0.5, 0.5]^3; 1.0 when both are empty.

    Args:
        weights: [N, D] float32 flat OccupancyMLP weights in ``layout``.
        shapes: N shapes, row i compared with ``shapes[i]``.
    """
    shapes = _check_shapes(shapes)
    weights = check_weights(weights, layout)
    if weights.shape[0] != len(shapes):
        raise ValueError(f"weights must have one row per shape: {weights.shape[0]} rows for {len(shapes)} shapes")
    grid = grid_points(resolution, device=weights.device)
    ious = []
    for row, shape in enumerate(shapes):
        field = occupancy_logits(weights[row : row + 1], layout, grid)[0] > 0
        truth = shape.occupancy(grid)
        union = int((field | truth).sum())
        ious.append(int((field & truth).sum()) / union if union else 1.0)
    return torch.tensor(ious)


def _check_shapes(shapes: object) -> list[Shape]:
    if isinstance(shapes, Shape) or not isinstance(shapes, Sequence):
        raise TypeError(f"shapes must be a sequence of Shape (e.g. make_shapes('airplane', 200)); got "
                        f"{type(shapes).__name__}")
    if not shapes:
        raise ValueError("shapes must hold at least one Shape; got an empty sequence")
    for index, shape in enumerate(shapes):
        if not isinstance(shape, Shape):
            raise TypeError(f"shapes[{index}] must be a Shape (from make_shape); got {type(shape).__name__}")
    return list(shapes)


def _shape_metadata(shape: Shape) -> dict[str, Any]:
    """How the shape was drawn: ``make_shape(m["family"], m["shape_seed"], base_seed=m["base_seed"],
    jitter=m["jitter"])`` rebuilds it."""
    return {"family": shape.family, "shape_seed": shape.seed, "base_seed": shape.base_seed, "jitter": shape.jitter}


def _initial_weights(init: object, template: OccupancyMLP, layout: ParamLayout, shapes: list[Shape],
                     seeds: list[int], steps: int, batch_size: int, lr: float, samples: int,
                     progress: bool) -> torch.Tensor:
    """[N, D] starting weights of the networks for ``init`` (``fit_fields``)."""
    if isinstance(init, torch.Tensor):
        if tuple(init.shape) != (layout.size,):
            raise ValueError(f"init must be one flat network [{layout.size}] in the zoo's layout; got shape "
                             f"{tuple(init.shape)}")
        return check_weights(init.unsqueeze(0), layout, name="init").expand(len(shapes), -1)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS} or a tensor [{layout.size}]; got {init!r}")
    if init == "random":
        return torch.stack([_seeded_weights(template, layout, s) for s in seeds])
    start = _seeded_weights(template, layout, seeds[0]).unsqueeze(0)
    with tqdm(total=steps, unit="network-step", disable=not progress, desc="fitting the first field") as bar:
        first, _ = _fit_chunk(template, shapes[:1], start, seeds[:1], steps, batch_size, lr, samples, bar.update)
    return first.expand(len(shapes), -1)


def _seeded_weights(template: OccupancyMLP, layout: ParamLayout, seed: int) -> torch.Tensor:
    """[D] PyTorch's default initialisation of the template's architecture after ``torch.manual_seed(seed)``,
    without touching the caller's generator."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return layout.flatten(OccupancyMLP(**template.options()).state_dict())[0]


def _fit_chunk(template: OccupancyMLP, shapes: list[Shape], start: torch.Tensor, seeds: list[int], steps: int,
               batch_size: int, lr: float, samples: int,
               on_step: Callable[[int], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fits B networks from ``start`` [B, D] together; returns their weights [B, D] and last-batch losses [B]."""
    model = StackedModel([template.net] * len(shapes))
    net_layout = ParamLayout.from_module(template.net)  # the same tensors and order, without the "net." prefix
    tensors = model.stacked_tensors()
    with torch.no_grad():
        for entry in net_layout.entries:
            tensors[entry.name].copy_(start[:, entry.offset : entry.offset + entry.numel].view(-1, *entry.shape))
    pools = [training_points(shape, samples // 2, samples // 2, np.random.default_rng([s, 0]))
             for shape, s in zip(shapes, seeds)]
    points, labels = torch.stack([p for p, _ in pools]), torch.stack([y for _, y in pools])
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        for group in optimiser.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        rows = torch.stack([torch.randint(samples, (batch_size,), generator=g) for g in generators])  # [B, batch]
        x = torch.gather(points, 1, rows.unsqueeze(2).expand(-1, -1, 3))
        logits = model(template.encoding(x)).squeeze(2)
        losses = F.binary_cross_entropy_with_logits(logits, torch.gather(labels, 1, rows), reduction="none").mean(1)
        optimiser.zero_grad()
        losses.sum().backward()  # network b's gradient is that of its own mean loss
        optimiser.step()
        on_step(len(shapes))
    return model.flat(net_layout), losses.detach()
