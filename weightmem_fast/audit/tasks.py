"""What "behaviour" means in an audit (issue 8): a classifier on a test set, or a neural field and its surface.

A task turns a group's flat weights into a ``Measured`` record once, then compares records:

- ``ClassifierTask``: ``weightmem_fast.evaluate`` gives accuracy and the packed error sets; similarity to training
  is ``max_iou`` of error sets (study_spec §2.4), quality is accuracy.
- ``FieldTask``: ``fields.field_to_points`` meshes each occupancy network into a normalised surface cloud;
  similarity to training is the min Chamfer distance to the training clouds (``nearest_shape``; study_spec §2.5),
  quality the min Chamfer distance to the held-out clouds. Models without a surface get NaN for both.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .. import fields
from ..layout import ParamLayout
from ..ops.chamfer import nearest_shape
from ..ops.eval import evaluate
from ..ops.shape_metrics import shape_metrics
from ..packed_masks import PackedMasks
from .result import CLASSIFIER, FIELD, Behaviour
from .training import LOCAL, Searches


@dataclasses.dataclass(eq=False)
class Measured:
    """A group's behaviour, computed once per group.

    ``quality``, ``errors``, ``clouds`` and ``ok`` are of the models this process measured: the whole group, except
    the training group of a sharded audit (this rank's rows, n = M_r). ``extras`` are always the whole group's.

    Attributes:
        quality: [n] float (accuracy, or min Chamfer distance to the held-out clouds).
        errors: classifier tasks: the packed error sets [n, T].
        clouds: field tasks: normalised clouds [n, P, 3] (NaN rows for models without a surface).
        ok: field tasks: [n] bool, the models with a surface.
        extras: per-model tensors of the whole group, kept in the result for figures (``GroupAudit.extras``).
    """

    quality: torch.Tensor
    errors: PackedMasks | None = None
    clouds: torch.Tensor | None = None
    ok: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class ClassifierTask:
    """Behaviour of classifiers: predictions on a fixed, ordered test set.

    Attributes:
        template: the architecture, e.g. ``zoo.model_from_zoo(zoo, 0)`` or ``zoo.make_model("mlp", ...)``; tensors
            outside ``layout`` stay fixed (BatchNorm statistics, the base model of a subset layout).
        inputs: [T, ...] test inputs the template accepts.
        labels: [T] int64 classes.
        layout: the flat layout of the audited weights; default ``ParamLayout.from_module(template)``.
    """

    template: nn.Module
    inputs: torch.Tensor
    labels: torch.Tensor
    layout: ParamLayout | None = None

    behaviour: Behaviour = dataclasses.field(default=CLASSIFIER, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.template, nn.Module):
            raise TypeError(f"ClassifierTask.template must be a torch.nn.Module; got {type(self.template).__name__}")
        if not isinstance(self.inputs, torch.Tensor) or not isinstance(self.labels, torch.Tensor) or \
                self.labels.dim() != 1 or self.inputs.shape[0] != self.labels.shape[0] or self.labels.numel() == 0:
            raise ValueError("ClassifierTask needs inputs [T, ...] and labels [T] tensors with the same T >= 1; got "
                             f"{_shape(self.inputs)} and {_shape(self.labels)}")
        if self.layout is None:
            self.layout = ParamLayout.from_module(self.template)

    def measure(self, weights: torch.Tensor, training: bool = False, searches: Searches = LOCAL) -> Measured:
        """Accuracy and error sets of every model (one batched ``evaluate``, or ``searches.evaluate_own`` for the
        training rows this process holds)."""
        run = searches.evaluate_own if training else searches.evaluate
        result = run(self.template, weights, self.inputs, self.labels, self.layout)
        return Measured(quality=result.accuracy, errors=result.errors)

    def similarity(self, query: Measured, training: Measured, exclude_self: bool,
                   searches: Searches = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
        """(max error-set IoU over training models [n], the index that attains it [n])."""
        values, index = searches.max_iou(query.errors, training.errors, k=1, exclude_self=exclude_self)
        return values[:, 0], index[:, 0]

    def group_metrics(self, measured: Measured) -> dict[str, float]:
        """Set-level numbers of a group (none for classifiers: the per-model table says it all)."""
        return {}

    def predict(self, weights: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Argmax classes [n, S] of the models on other inputs (e.g. a decision-boundary grid)."""
        dummy = torch.zeros(inputs.shape[0], dtype=torch.int64, device=inputs.device)
        return evaluate(self.template, weights, inputs, dummy, layout=self.layout).predictions

    def settings(self) -> dict[str, Any]:
        return {"template": type(self.template).__name__, "parameters": self.layout.size,
                "test_samples": int(self.labels.shape[0])}


@dataclasses.dataclass(eq=False)
class FieldTask:
    """Behaviour of occupancy networks (HyperDiffusion's shapes): their surfaces as normalised point clouds.

    Attributes:
        layout: the occupancy networks' layout (``OccupancyMLP``; e.g. a ``fit_fields`` zoo's layout).
        training_clouds: [N_train, P, 3] clouds of the training shapes (the study: ground-truth clouds, e.g.
            ``fields.shape_points(shapes)``), in the fields' coordinates; normalised here.
        test_clouds: [N_test, P, 3] clouds of held-out shapes (quality, MMD/COV/1-NNA), normalised here.
        resolution, n_points, level, seed: ``field_to_points``'s meshing of every audited network.
    """

    layout: ParamLayout
    training_clouds: torch.Tensor
    test_clouds: torch.Tensor
    resolution: int = 64
    n_points: int = 2048
    level: float = 0.0
    seed: int = 0

    behaviour: Behaviour = dataclasses.field(default=FIELD, init=False)

    def __post_init__(self) -> None:
        fields.OccupancyMLP.from_layout(self.layout)  # raises a clear error for any other layout
        for name in ("training_clouds", "test_clouds"):
            clouds = getattr(self, name)
            if not isinstance(clouds, torch.Tensor) or clouds.dim() != 3 or clouds.shape[2] != 3 or \
                    not clouds.shape[0] or not torch.isfinite(clouds).all():
                raise ValueError(f"FieldTask.{name} must be finite clouds [N, P, 3] with N >= 1; got "
                                 f"{_shape(clouds)} (drop shapes without a surface first)")
            setattr(self, name, fields.normalize_clouds(clouds.float()))

    def measure(self, weights: torch.Tensor, training: bool = False, searches: Searches = LOCAL) -> Measured:
        """Mesh every network, normalise its cloud, and take its min Chamfer distance to the held-out clouds.

        With ``training=True`` (the training group) nothing is meshed: the study compares the training shapes'
        own clouds, ``training_clouds`` (one per training row), and this process measures the rows it holds
        (``searches.own_rows``: all of them, or this rank's in a sharded audit); ``extras`` hold all of them.
        Fields are compared with the held-out clouds, which every process holds, so no training search runs here."""
        if training:
            whole = self.training_clouds
            extras = {"clouds": whole, "surface": torch.ones(whole.shape[0], dtype=torch.bool)}
            clouds, ok = searches.own_rows(whole), searches.own_rows(extras["surface"])
        else:
            surfaces = fields.field_to_points(weights, self.layout, self.resolution, self.n_points, self.seed,
                                              level=self.level)
            ok, clouds = surfaces.ok, surfaces.points.clone()
            if ok.any():
                clouds[ok] = fields.normalize_clouds(clouds[ok])
            extras = {"clouds": clouds, "surface": ok}
        quality = torch.full((clouds.shape[0],), float("nan"))
        if ok.any():
            quality[ok] = nearest_shape(clouds[ok], self.test_clouds)[0][:, 0].float()
        return Measured(quality=quality, clouds=clouds, ok=ok, extras=extras)

    def similarity(self, query: Measured, training: Measured, exclude_self: bool,
                   searches: Searches = LOCAL) -> tuple[torch.Tensor, torch.Tensor]:
        """(min Chamfer distance to the training clouds [n], its index [n]); NaN and -1 without a surface."""
        n = query.quality.shape[0]
        values, index = torch.full((n,), float("nan")), torch.full((n,), -1, dtype=torch.int64)
        ok = query.ok
        if ok.all():
            found = searches.nearest_shape(query.clouds, training.clouds, k=1, exclude_self=exclude_self)
            return found[0][:, 0].float(), found[1][:, 0]
        if ok.any():
            found = searches.nearest_shape(query.clouds[ok], training.clouds, k=1, exclude_self=False)
            values[ok], index[ok] = found[0][:, 0].float(), found[1][:, 0]
        return values, index

    def group_metrics(self, measured: Measured) -> dict[str, float]:
        """MMD, COV and 1-NNA of the group's surfaces against the held-out clouds, and the share with a surface;
        of the whole group (``measured.extras``), also when this process measured only its rows of it."""
        ok, clouds = measured.extras["surface"], measured.extras["clouds"]
        out = {"surface_rate": float(ok.float().mean())}
        if int(ok.sum()) >= 2:
            out.update(shape_metrics(clouds[ok], self.test_clouds))
        return out

    def settings(self) -> dict[str, Any]:
        return {"parameters": self.layout.size, "training_clouds": int(self.training_clouds.shape[0]),
                "test_clouds": int(self.test_clouds.shape[0]), "resolution": self.resolution,
                "n_points": self.n_points, "level": self.level, "seed": self.seed}


Task = ClassifierTask | FieldTask


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
