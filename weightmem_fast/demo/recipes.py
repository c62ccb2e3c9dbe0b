"""The four methods as the demo runs them: each recipe builds (or reuses) its zoo, fits (or reuses) its generator,
samples, and says what to audit against what, following the study's evaluation (study_spec §3.3, §4.3, §5.3, §6.3).

Sizes: the "demo" profile uses each generator's "demo" config and demo zoo; "quick" shrinks zoos, steps and
sample counts so that all four fit in about two minutes (a smoke run: its generators are undertrained). The
ablation (``weightmem_fast.ablation``) runs the same recipes with other zoo settings, a fraction of the zoo (its
data-scaling study) and a changed config (its ``Fitter``).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, Mapping

import torch

from .. import fields, zoo
from ..audit import ClassifierTask, FieldTask
from ..generators import get, gpt, hr, hyperdiffusion
from ..generators.base import Generator
from ..generators.config import Config
from ..generators.pdiff_zoo import pdiff_zoo
from ..io import Zoo
from ..symmetry import reconstruction_invariance

FitFn = Callable[[str, Zoo, dict[str, Any]], Generator]


# The quick profile's changes to each generator's "demo" config (smoke runs: undertrained on purpose).
QUICK_FIT = {
    "hr": {"optim": {"steps": 60, "warmup_steps": 10}},
    "gpt": {"held_out_runs": 4, "width": 64, "diffusion_steps": 200, "optim": {"steps": 100, "warmup_steps": 10}},
    "hd": {"depth": 1, "diffusion_steps": 100, "optim": {"steps": 100, "warmup_steps": 10}},
    "pdiff": {"diffusion_steps": 200, "ae_optim": {"steps": 100}, "ddpm_optim": {"steps": 100}},
}


def fit_overrides(method: str, quick: bool) -> dict[str, Any]:
    """The changes a recipe asks of its generator's "demo" config (none in the demo profile)."""
    return dict(QUICK_FIT[method]) if quick else {}


def base_config(method: str, quick: bool) -> Config:
    """The config a recipe fits: the generator's "demo" config with ``fit_overrides``."""
    return get(GENERATORS[method]).configs["demo"].replace(**fit_overrides(method, quick))


@dataclasses.dataclass(frozen=True)
class RecipeOptions:
    """How a recipe builds its zoo and samples.

    Attributes:
        quick: the smoke profile (tiny zoos, fits and sample counts).
        seed: seeds sampling.
        zoo_options: settings of the method's demo zoo that replace the profile's (the keys of ``hr.DEMO_ZOO``,
            ``gpt.DEMO_ZOO``, ``hyperdiffusion.DEMO_ZOO`` or ``pdiff_zoo``'s keyword arguments), e.g.
            ``{"n_runs": 128}``.
        data_fraction: in (0, 1], the share of the zoo the generator trains on (the data-scaling study): the first
            runs (HR; G.pt's training runs, its held-out prompt runs stay), the first shapes (HyperDiffusion) or
            the first checkpoints (P-diff); at least 2. The audit's training group shrinks with it.
        panels: compute the report panels (HR's invariance table); the ablation skips them.
    """

    quick: bool = False
    seed: int = 0
    zoo_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data_fraction: float = 1.0
    panels: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.data_fraction <= 1:
            raise ValueError(f"data_fraction must be in (0, 1]; got {self.data_fraction!r}")

    def zoo(self, quick_options: Mapping[str, Any]) -> dict[str, Any]:
        """The demo zoo's settings: the quick profile's (when quick) with ``zoo_options`` on top."""
        return {**(quick_options if self.quick else {}), **self.zoo_options}


@dataclasses.dataclass(eq=False)
class Prepared:
    """What one method's audit needs.

    Attributes:
        training: the training weights the audit compares with.
        generated: the generator's samples.
        task: the behaviour task.
        audit_options: extra keyword arguments of ``audit`` (trajectory, frontier sizes, ...).
        notes: lines for the report (sizes, what the groups are, deviations from the study).
        panels: extra HTML fragments for the method's report section (built and escaped by this package).
    """

    training: torch.Tensor | Zoo
    generated: torch.Tensor
    task: ClassifierTask | FieldTask
    audit_options: dict[str, Any]
    notes: list[str]
    panels: list[str] = dataclasses.field(default_factory=list)


def hyper_representations(fit: FitFn, options: RecipeOptions) -> Prepared:
    """HR on digits CNN trajectories; the training group is the autoencoder's reconstructions of the zoo, as the
    study audits HR (study_spec §3.3); samples use the study's KDE sampler (``kde_quirk``). Also the study's
    invariance table (§2.9, §3.4) on the final checkpoint of every run."""
    quick, seed = options.quick, options.seed
    cnn_zoo = keep_fraction(hr.demo_zoo(**options.zoo({"n_runs": 6, "epochs": 3})), options.data_fraction)
    generator = fit("hr", cnn_zoo, fit_overrides("hr", quick))
    data = zoo.digits()
    training = generator.reconstruct(cnn_zoo.weights)
    samples = generator.sample(16 if quick else 100, seed=seed, kde_quirk=True)
    template = zoo.model_from_zoo(cnn_zoo, 0)
    panels = []
    if options.panels:
        steps = torch.tensor([row["step"] for row in cnn_zoo.metadata])
        panels.append(reconstruction_invariance(generator.reconstruct, cnn_zoo.weights[steps == steps.max()],
                                                cnn_zoo.layout, template, data.test_x, data.test_y,
                                                seed=seed).to_html())
    return Prepared(training, samples, ClassifierTask(template, data.test_x, data.test_y, layout=cnn_zoo.layout),
                    {}, [f"zoo: {cnn_zoo.weights.shape[0]} digits CNN checkpoints (D = {cnn_zoo.layout.size}); "
                         "training group: their autoencoder reconstructions (the study's reference for HR); samples: "
                         "the study's KDE sampler (kde_quirk=True); invariance: the final checkpoint of every run"],
                    panels)


def gpt_method(fit: FitFn, options: RecipeOptions) -> Prepared:
    """G.pt on digits MLP trajectories; generated = one-step prompting (target loss 0) from held-out initial
    checkpoints; training group = the final checkpoint of every training run; weight distances permutation-aligned
    (study_spec §4.3)."""
    quick = options.quick
    overrides = fit_overrides("gpt", quick)
    held_out = base_config("gpt", quick).held_out_runs
    trajectory_zoo = keep_fraction(gpt.demo_zoo(**options.zoo({"n_runs": 20, "epochs": 3})), options.data_fraction,
                                   held_out_runs=held_out)
    generator = fit("gpt", trajectory_zoo, overrides)
    runs = torch.tensor([row["run"] for row in trajectory_zoo.metadata])
    steps = torch.tensor([row["step"] for row in trajectory_zoo.metadata])
    finals = (steps == steps.max()) & (runs < int(runs.max()) + 1 - held_out)
    data = zoo.digits()
    return Prepared(trajectory_zoo.weights[finals], generator.sample(16 if quick else 64, seed=options.seed),
                    ClassifierTask(zoo.model_from_zoo(trajectory_zoo, 0), data.test_x.flatten(1), data.test_y,
                                   layout=trajectory_zoo.layout), {"align": True},
                    [f"zoo: {len(set(runs.tolist()))} digits MLP runs x {int((runs == 0).sum())} checkpoints "
                     f"(D = {trajectory_zoo.layout.size}); training group: the final checkpoints of the "
                     f"{int(finals.sum())} training runs; samples: prompted with loss 0 from the initial checkpoints "
                     f"of the {held_out} held-out runs; weight distances after aligning hidden units (as the study)"])


def hyperdiffusion_method(fit: FitFn, options: RecipeOptions) -> Prepared:
    """HyperDiffusion on occupancy MLPs of procedural airplanes; behaviour = surfaces: Chamfer distance of meshed
    samples to the training shapes' ground-truth clouds (novelty) and to held-out shapes (quality), §5.3."""
    quick = options.quick
    zoo_settings = options.zoo({"shapes": 12, "steps": 300})
    field_zoo = keep_fraction(hyperdiffusion.demo_zoo(**zoo_settings), options.data_fraction)
    generator = fit("hd", field_zoo, fit_overrides("hd", quick))
    family = zoo_settings.get("family", hyperdiffusion.DEMO_ZOO["family"])
    count = field_zoo.weights.shape[0]
    points, resolution = (512, 32) if quick else (1024, 48)
    training_clouds = _shape_clouds(family, range(count), points)
    held_out = range(10_000, 10_000 + (8 if quick else 32))
    task = FieldTask(field_zoo.layout, training_clouds, _shape_clouds(family, held_out, points),
                     resolution=resolution, n_points=points)
    return Prepared(field_zoo, generator.sample(8 if quick else 32, seed=options.seed), task,
                    {"baseline_models": 8 if quick else 32, "frontier_models": 4 if quick else 8},
                    [f"zoo: {count} occupancy MLPs of procedural airplanes (D = {field_zoo.layout.size}, "
                     "first_weights initialisation); behaviour: surfaces meshed on a "
                     f"{resolution}^3 grid, {points} points, against the training shapes' ground-truth clouds and "
                     f"{len(held_out)} held-out {family}s"])


def pdiff_method(fit: FitFn, options: RecipeOptions) -> Prepared:
    """P-diff on consecutive checkpoints of a digits ``cnn_bn``'s last BatchNorm layers; one trajectory, so the
    average and Gaussian baselines join the noise ones (study_spec §6.3)."""
    quick = options.quick
    base, checkpoints = pdiff_zoo(**options.zoo({"checkpoints": 60}), progress=False)
    checkpoints = keep_fraction(checkpoints, options.data_fraction)
    generator = fit("pdiff", checkpoints, {"base": base, **fit_overrides("pdiff", quick)})
    data = zoo.digits()
    task = ClassifierTask(generator.base_model(), data.test_x, data.test_y, layout=checkpoints.layout)
    return Prepared(checkpoints, generator.sample(16 if quick else 100, seed=options.seed), task,
                    {"trajectory": True},
                    [f"zoo: {checkpoints.weights.shape[0]} consecutive checkpoints of the base model's last two "
                     f"BatchNorm layers (D = {checkpoints.layout.size}); the rest of the network is the base model"])


def keep_fraction(zoo_: Zoo, fraction: float, held_out_runs: int = 0) -> Zoo:
    """The first ``fraction`` of a zoo (``RecipeOptions.data_fraction``), at least 2 units: whole runs in run order
    when the metadata has runs (the last ``held_out_runs`` runs are always kept), else rows. 1.0 returns ``zoo_``."""
    if fraction == 1:
        return zoo_
    runs = [row.get("run") for row in zoo_.metadata]
    if None in runs or len(set(runs)) < 2:
        return zoo_[: max(2, math.ceil(fraction * len(zoo_)))]
    order = sorted(set(runs))
    training = order[: len(order) - held_out_runs]
    kept = set(training[: max(2, math.ceil(fraction * len(training)))]) | set(order[len(training):])
    return zoo_[[i for i, run in enumerate(runs) if run in kept]]


@functools.lru_cache(maxsize=8)
def _shape_clouds(family: str, seeds: range, points: int) -> torch.Tensor:
    """Ground-truth surface clouds [len(seeds), points, 3] of procedural shapes (64^3 meshing), kept in memory:
    the ablation asks for the same clouds once per cell."""
    return fields.shape_points(fields.make_shapes(family, seeds), resolution=64, n_points=points).points


RECIPES: dict[str, Callable[[FitFn, RecipeOptions], Prepared]] = {
    "hr": hyper_representations, "gpt": gpt_method, "hd": hyperdiffusion_method, "pdiff": pdiff_method}
TITLES = {"hr": "Hyper-Representations", "gpt": "G.pt", "hd": "HyperDiffusion", "pdiff": "P-diff"}
# The registry names of the generators.
GENERATORS = {"hr": "hr", "gpt": "gpt", "hd": "hyperdiffusion", "pdiff": "pdiff"}
METHODS = tuple(RECIPES)
