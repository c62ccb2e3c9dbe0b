"""``audit``: from generated and training weights to per-model numbers, the noise frontier and the verdict
(issue 8). Every distance, similarity and accuracy goes through the package's kernels (``nearest``, ``max_iou``,
``evaluate``, ``nearest_shape``)."""
from __future__ import annotations

import math
import os
import platform
import sys
from typing import Any, Literal, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import baselines as baselines_lib
from .._version import __version__
from ..io import Zoo
from ..layout import ParamLayout
from ..symmetry.aligned import HiddenUnits
from . import verdict as verdict_lib
from .result import AuditResult, Estimate, GroupAudit, Role, Verdict
from .tasks import ClassifierTask, FieldTask, Measured
from .training import TrainingSet

# Default noise baselines: sigma as a multiple of the std of all training values (the study's G.pt sigmas, 0.05
# and 0.1 in a space where the weights have unit std).
NOISE_FACTORS = (0.05, 0.1)
# Default noise sweep for the frontier: 12 sigmas log-spaced over [1e-3, 1] x the training std
# (``baselines.noise_frontier``), this many noised models per sigma; meshing fields is costlier, so fewer there.
FRONTIER_MODELS = {"classifier": 32, "field": 8}
FIELD_FRONTIER_SIGMAS = 6
BASELINE_MODELS = 100
AVERAGE_K = 16


def audit(
    generated: torch.Tensor | Zoo | Mapping[str, torch.Tensor | Zoo],
    training: torch.Tensor | Zoo,
    task: ClassifierTask | FieldTask,
    baselines: Literal["default", "none"] | Mapping[str, torch.Tensor] = "default",
    reference_groups: Mapping[str, torch.Tensor | Zoo] | None = None,
    progress: bool = True,
    *,
    k: int = 3,
    seed: int = 0,
    trajectory: bool | None = None,
    frontier_sigmas: torch.Tensor | list[float] | None = None,
    frontier_models: int | None = None,
    baseline_models: int = BASELINE_MODELS,
    resamples: int = 1000,
    level: float = 0.95,
    align: bool = False,
    sharded: bool = False,
) -> AuditResult:
    """Audits generated weights for memorisation of the training weights.

    Groups: "training" (each training model against the others, self excluded by index), the generated group(s),
    the ``reference_groups`` (audited like generated ones, e.g. an autoencoder's reconstructions), the baselines,
    and "frontier" (training models plus noise over a sigma sweep; ``weightmem_fast.audit.verdict``). Generated,
    reference and baseline groups get a verdict (the baselines' calibrate the generators': a noise baseline sits
    on the frontier by construction).

    Args:
        generated: [N, D] weights (tensor or ``Zoo``), or several generators as {name: weights}; one group each
            (named "generated" for a single one).
        training: [M, D] training weights (tensor or ``Zoo``), M >= 2, in the same layout.
        task: what behaviour means: ``ClassifierTask`` or ``FieldTask`` (its layout must have size D).
        baselines: "default": noise at ``NOISE_FACTORS`` x the training std, plus average-16 and per-parameter
            Gaussian when the training set is one trajectory; "none"; or your own {name: [n, D]}.
        reference_groups: extra {name: [n, D]} groups audited like generated ones.
        progress: show a progress bar over the stages.
        k: nearest training models kept per model (the heatmap uses 3).
        seed: seeds every random draw (baselines, frontier, bootstrap): equal inputs give equal results.
        trajectory: the training set is consecutive checkpoints of one run (P-diff); None decides from a Zoo's
            metadata (one distinct "run"), False for plain tensors.
        frontier_sigmas: the noise sweep; default 12 (classifier) or 6 (field) sigmas log-spaced over
            [1e-3, 1] x the training std.
        frontier_models: noised models per sigma (default 32 for classifiers, 8 for fields).
        baseline_models: models per default baseline (fewer when the training set is smaller).
        resamples, level: bootstrap resamples and confidence level of the verdict's intervals.
        align: measure weight distances after aligning hidden units (``aligned_nearest``: exact, for
            one-hidden-layer MLP layouts, as the study does for G.pt); a permuted copy of a training model is then
            at distance 0.
        sharded: ``training`` is this rank's shard of the training set, split by rows in rank order across the
            ranks of torch.distributed's default group (e.g. ``io.load_zoo(path, shard=(rank, world))``; a shard
            may be empty); every other argument is the same on every rank. Call it on every rank: each returns the
            same result as the single-process audit of the whole set, except the training group's ``weights``,
            which hold this rank's shard (``distributed.audit`` says how; the std of all training values, and so
            the default sigmas, may differ from the single-process audit in the last float64 bits). A
            ``FieldTask`` holds every training cloud on every rank: each rank measures its rows' clouds, and the
            training group's MMD, COV and 1-NNA are computed whole on every rank.

    Returns:
        AuditResult (``to_json``, ``to_frame``, ``save``, ``report``).

    Raises:
        TypeError / ValueError: naming the bad argument (shapes, layouts, names, counts).
    """
    source = _training_set(training, task, sharded)
    if source.rows < 2:
        raise ValueError(f"training must hold at least 2 models (the training group is compared with itself, self "
                         f"excluded); got {source.rows}")
    if isinstance(task, FieldTask) and task.training_clouds.shape[0] != source.rows:
        raise ValueError(f"FieldTask.training_clouds must hold one cloud per training model: "
                         f"{task.training_clouds.shape[0]} clouds for {source.rows} models")
    if not isinstance(k, int) or not 1 <= k <= source.rows - 1:
        raise ValueError(f"k must be an int in [1, {source.rows - 1}] (training models - 1); got {k!r}")
    if align:
        HiddenUnits.of(task.layout)  # a clear error for layouts without one hidden layer to align
    if not 0 < level < 1 or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"level must be in (0, 1) and resamples an int >= 1; got {level!r} and {resamples!r}")
    trajectory = source.trajectory if trajectory is None else trajectory

    planned: list[tuple[str, Role, torch.Tensor]] = [("training", "training", source.weights)]
    generated_groups = generated if isinstance(generated, Mapping) else {"generated": generated}
    for role, groups in (("generated", generated_groups), ("reference", reference_groups or {})):
        for name, weights in groups.items():
            planned.append((name, role, _weights(f"{role} group {name!r}", weights, like=source.weights)[0]))
    std = source.std()
    planned += [(name, "baseline", weights) for name, weights in
                _baselines(baselines, source, std, trajectory, baseline_models, seed).items()]
    sigmas, sweep = _frontier(source, task, frontier_sigmas, frontier_models, seed)
    planned.append(("frontier", "frontier", sweep))
    names = [name for name, _, _ in planned]
    if len(set(names)) != len(names):
        raise ValueError(f"group names must be unique; got {names}")

    behaviour = task.behaviour
    groups: dict[str, GroupAudit] = {}
    measured: dict[str, Measured] = {}
    bar = tqdm(planned, desc="audit", disable=not progress)
    for name, role, weights in bar:
        bar.set_postfix_str(name)
        is_training = role == "training"
        measured[name] = task.measure(weights, training=is_training, searches=source.searches)
        similarity, index = task.similarity(measured[name], measured["training"], exclude_self=is_training,
                                            searches=source.searches)
        distances, neighbours = _nearest(weights, source, k, is_training, task.layout if align else None)
        quality = source.gather(measured[name].quality) if is_training else measured[name].quality
        metrics = {behaviour.quality: quality, behaviour.similarity: similarity,
                   behaviour.similarity_index: index}
        if role == "frontier":
            metrics["sigma"] = sigmas.repeat_interleave(weights.shape[0] // sigmas.shape[0])
        groups[name] = GroupAudit(name, role, weights, distances[:, 0].clone(), neighbours, distances, metrics,
                                  measured[name].extras)

    sweep_group = groups["frontier"]
    frontier = verdict_lib.frontier(behaviour, sigmas, sweep_group.metrics[behaviour.similarity],
                                    sweep_group.metrics[behaviour.quality], sweep_group.metrics["sigma"])
    thresholds = verdict_lib.near_copy_thresholds(behaviour, groups["training"].min_l2,
                                                  sweep_group.metrics[behaviour.similarity],
                                                  sweep_group.metrics["sigma"])
    generator = torch.Generator().manual_seed(seed)
    verdicts, per_model = {}, {}
    for name, group in groups.items():
        if group.role not in ("generated", "reference", "baseline"):
            continue
        similarity, quality = group.metrics[behaviour.similarity], group.metrics[behaviour.quality]
        beyond = verdict_lib.beyond_frontier(behaviour, frontier, similarity, quality)
        copies = verdict_lib.near_copies(behaviour, thresholds, group.min_l2, similarity)
        per_model[name] = {"beyond_frontier": beyond, "near_copy": copies}
        finite = ~group.min_l2.isnan()
        verdicts[name] = Verdict(
            name,
            verdict_lib.bootstrap_fraction(beyond, resamples, level, generator),
            verdict_lib.bootstrap_fraction(copies, resamples, level, generator),
            verdict_lib.bootstrap_ratio(group.min_l2[finite], groups["training"].min_l2, resamples, level,
                                        generator) if finite.any() else Estimate(math.nan, math.nan, math.nan, level),
            thresholds)

    settings = {"task": task.settings(), "k": k, "seed": seed, "align": align, "trajectory": trajectory,
                "training_std": std, "noise_factors": list(NOISE_FACTORS), "frontier_sigmas": sigmas.tolist(),
                "frontier_models": sweep.shape[0] // sigmas.shape[0], "baseline_models": baseline_models,
                "baselines": baselines if isinstance(baselines, str) else sorted(baselines),
                "resamples": resamples, "level": level,
                "near_copy_percentile": verdict_lib.NEAR_COPY_PERCENTILE}
    return AuditResult(behaviour, groups, frontier, verdicts, per_model,
                       {name: task.group_metrics(m) for name, m in measured.items()}, settings, versions())


def versions() -> dict[str, Any]:
    """Package versions and the machine, for the record of a run."""
    import sklearn

    from .. import cuda_available

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"weightmem_fast": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda_kernels": cuda_available(), "gpu": device}


def _weights(name: str, value: object, like: torch.Tensor | None = None) -> tuple[torch.Tensor, bool]:
    """(weights [N, D], whether the value is a Zoo of one training run) from a tensor or a Zoo."""
    one_run = False
    if isinstance(value, Zoo):
        runs = {row.get("run") for row in value.metadata}
        one_run = len(runs) == 1 and None not in runs and len(value.metadata) > 1
        value = value.weights
    if not isinstance(value, torch.Tensor) or value.dim() != 2 or not value.is_floating_point() or \
            not value.shape[0]:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be floating weights [N, D] with N >= 1 (a tensor or a weightmem_fast.io Zoo); "
                         f"got {got}")
    value = value.float()
    if like is not None and (value.shape[1] != like.shape[1] or value.device != like.device):
        raise ValueError(f"{name} must have the training weights' width D = {like.shape[1]} and device "
                         f"{like.device}; got D = {value.shape[1]} on {value.device} (same layout?)")
    return value, one_run


def _training_set(training: object, task: ClassifierTask | FieldTask, sharded: bool) -> TrainingSet:
    """The whole training set (checked), or with ``sharded`` this rank's shard of it (checked by every rank)."""
    if not isinstance(sharded, bool):
        raise TypeError(f"sharded must be a bool; got {type(sharded).__name__}")
    if not sharded:
        weights, trajectory = _weights("training", training)
        if weights.shape[1] != task.layout.size:
            raise ValueError(f"training has D = {weights.shape[1]} but the task's layout has "
                             f"{task.layout.size} parameters")
        return TrainingSet(weights, trajectory)
    from ..distributed.audit import ShardedTrainingSet

    return ShardedTrainingSet.create(training, task.layout.size)


def _baselines(spec: object, training: TrainingSet, std: float, trajectory: bool, count: int,
               seed: int) -> dict[str, torch.Tensor]:
    if isinstance(spec, Mapping):
        return {name: _weights(f"baseline {name!r}", weights, like=training.weights)[0]
                for name, weights in spec.items()}
    if spec == "none":
        return {}
    if spec != "default":
        raise ValueError(f"baselines must be 'default', 'none' or a mapping {{name: weights [n, D]}}; got {spec!r}")
    n = min(count, training.rows)
    # noise(t, n, seed, s) is noise_frontier(t, n, seed, [s])[1][0] (baselines.noise).
    out = {f"noise {factor:g}": training.noise_frontier(n, seed, [factor * std])[1][0] for factor in NOISE_FACTORS}
    if trajectory:
        k = min(AVERAGE_K, training.rows)
        out[f"average {k}"] = training.average(count, seed, k)
        out["gaussian"] = training.gaussian(count, seed)
    return out


def _frontier(training: TrainingSet, task: ClassifierTask | FieldTask, sigmas: object, models: int | None,
              seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas float64 [S], the noised models [S * n, D], sigma-major)."""
    kind = task.behaviour.kind
    models = FRONTIER_MODELS[kind] if models is None else models
    if not isinstance(models, int) or models < 1:
        raise ValueError(f"frontier_models must be an int >= 1; got {models!r}")
    if sigmas is None and kind == "field":
        scale = training.std(unbiased=False)
        sigmas = torch.logspace(math.log10(baselines_lib.FRONTIER_RANGE[0] * scale),
                                math.log10(baselines_lib.FRONTIER_RANGE[1] * scale), FIELD_FRONTIER_SIGMAS,
                                dtype=torch.float64)
    values, sets = training.noise_frontier(models, seed, sigmas)
    return values, torch.cat(sets)


def _nearest(weights: torch.Tensor, training: TrainingSet, k: int, exclude_self: bool,
             aligned_layout: ParamLayout | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances [n, k], indices [n, k]) to the nearest training rows, plain or (with ``aligned_layout``) after
    aligning hidden units; NaN and -1 for rows with NaN/Inf weights (a broken generated model is reported, not an
    error). With ``exclude_self``, ``weights`` are the training rows this process holds."""
    searches = training.searches

    def search(query: torch.Tensor, self_excluded: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if aligned_layout is None:
            return searches.nearest(query, training.weights, k=k, exclude_self=self_excluded)
        return searches.aligned_nearest(query, training.weights, k=k, exclude_self=self_excluded,
                                        layout=aligned_layout)

    finite = torch.isfinite(weights).all(dim=1)
    if finite.all():
        return search(weights, exclude_self)
    distances = torch.full((weights.shape[0], k), float("nan"), device=weights.device)
    indices = torch.full((weights.shape[0], k), -1, dtype=torch.int64, device=weights.device)
    if finite.any():
        distances[finite], indices[finite] = search(weights[finite], False)
    return distances, indices
