"""The four methods as the demo runs them: each recipe builds (or reuses) its zoo, fits (or reuses) its generator,
samples, and says what to audit against what, following the study's evaluation (study_spec §3.3, §4.3, §5.3, §6.3).

Sizes: the "demo" profile uses each generator's "demo" config and demo zoo; "quick" shrinks zoos, steps and
sample counts so that all four fit in about two minutes (a smoke run: its generators are undertrained).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from .. import fields, zoo
from ..audit import ClassifierTask, FieldTask
from ..generators import gpt, hr, hyperdiffusion
from ..generators.base import Generator
from ..generators.pdiff_zoo import pdiff_zoo
from ..io import Zoo
from ..symmetry import reconstruction_invariance

FitFn = Callable[[str, Zoo, dict[str, Any]], Generator]


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


def hyper_representations(quick: bool, fit: FitFn, seed: int) -> Prepared:
    """HR on digits CNN trajectories; the training group is the autoencoder's reconstructions of the zoo, as the
    study audits HR (study_spec §3.3); samples use the study's KDE sampler (``kde_quirk``). Also the study's
    invariance table (§2.9, §3.4) on the final checkpoint of every run."""
    cnn_zoo = hr.demo_zoo(**({"n_runs": 6, "epochs": 3} if quick else {}))
    overrides = {"optim": {"steps": 60, "warmup_steps": 10}} if quick else {}
    generator = fit("hr", cnn_zoo, overrides)
    data = zoo.digits()
    training = generator.reconstruct(cnn_zoo.weights)
    samples = generator.sample(16 if quick else 100, seed=seed, kde_quirk=True)
    template = zoo.model_from_zoo(cnn_zoo, 0)
    steps = torch.tensor([row["step"] for row in cnn_zoo.metadata])
    invariance = reconstruction_invariance(generator.reconstruct, cnn_zoo.weights[steps == steps.max()],
                                           cnn_zoo.layout, template, data.test_x, data.test_y, seed=seed)
    return Prepared(training, samples, ClassifierTask(template, data.test_x, data.test_y, layout=cnn_zoo.layout),
                    {}, [f"zoo: {cnn_zoo.weights.shape[0]} digits CNN checkpoints (D = {cnn_zoo.layout.size}); "
                         "training group: their autoencoder reconstructions (the study's reference for HR); samples: "
                         "the study's KDE sampler (kde_quirk=True); invariance: the final checkpoint of every run"],
                    [invariance.to_html()])


def gpt_method(quick: bool, fit: FitFn, seed: int) -> Prepared:
    """G.pt on digits MLP trajectories; generated = one-step prompting (target loss 0) from held-out initial
    checkpoints; training group = the final checkpoint of every training run; weight distances permutation-aligned
    (study_spec §4.3)."""
    trajectory_zoo = gpt.demo_zoo(**({"n_runs": 20, "epochs": 3} if quick else {}))
    overrides = {"held_out_runs": 4, "width": 64, "diffusion_steps": 200,
                 "optim": {"steps": 100, "warmup_steps": 10}} if quick else {}
    generator = fit("gpt", trajectory_zoo, overrides)
    held_out = generator.config.held_out_runs
    runs = torch.tensor([row["run"] for row in trajectory_zoo.metadata])
    steps = torch.tensor([row["step"] for row in trajectory_zoo.metadata])
    finals = (steps == steps.max()) & (runs < int(runs.max()) + 1 - held_out)
    data = zoo.digits()
    return Prepared(trajectory_zoo.weights[finals], generator.sample(16 if quick else 64, seed=seed),
                    ClassifierTask(zoo.model_from_zoo(trajectory_zoo, 0), data.test_x.flatten(1), data.test_y,
                                   layout=trajectory_zoo.layout), {"align": True},
                    [f"zoo: {int(runs.max()) + 1} digits MLP runs x {int((runs == 0).sum())} checkpoints "
                     f"(D = {trajectory_zoo.layout.size}); training group: the final checkpoints of the "
                     f"{int(finals.sum())} training runs; samples: prompted with loss 0 from the initial checkpoints "
                     f"of the {held_out} held-out runs; weight distances after aligning hidden units (as the study)"])


def hyperdiffusion_method(quick: bool, fit: FitFn, seed: int) -> Prepared:
    """HyperDiffusion on occupancy MLPs of procedural airplanes; behaviour = surfaces: Chamfer distance of meshed
    samples to the training shapes' ground-truth clouds (novelty) and to held-out shapes (quality), §5.3."""
    options = {"shapes": 12, "steps": 300} if quick else {}
    field_zoo = hyperdiffusion.demo_zoo(**options)
    overrides = {"depth": 1, "diffusion_steps": 100, "optim": {"steps": 100, "warmup_steps": 10}} if quick else {}
    generator = fit("hd", field_zoo, overrides)
    family, count = hyperdiffusion.DEMO_ZOO["family"], field_zoo.weights.shape[0]
    points, resolution = (512, 32) if quick else (1024, 48)
    training_clouds = fields.shape_points(fields.make_shapes(family, count), resolution=64, n_points=points).points
    held_out = fields.make_shapes(family, range(10_000, 10_000 + (8 if quick else 32)))
    test_clouds = fields.shape_points(held_out, resolution=64, n_points=points).points
    task = FieldTask(field_zoo.layout, training_clouds, test_clouds, resolution=resolution, n_points=points)
    return Prepared(field_zoo, generator.sample(8 if quick else 32, seed=seed), task,
                    {"baseline_models": 8 if quick else 32, "frontier_models": 4 if quick else 8},
                    [f"zoo: {count} occupancy MLPs of procedural airplanes (D = {field_zoo.layout.size}, "
                     "first_weights initialisation); behaviour: surfaces meshed on a "
                     f"{resolution}^3 grid, {points} points, against the training shapes' ground-truth clouds and "
                     f"{len(held_out)} held-out airplanes"])


def pdiff_method(quick: bool, fit: FitFn, seed: int) -> Prepared:
    """P-diff on consecutive checkpoints of a digits ``cnn_bn``'s last BatchNorm layers; one trajectory, so the
    average and Gaussian baselines join the noise ones (study_spec §6.3)."""
    base, checkpoints = pdiff_zoo(**({"checkpoints": 60} if quick else {}), progress=False)
    overrides = {"diffusion_steps": 200, "ae_optim": {"steps": 100}, "ddpm_optim": {"steps": 100}} if quick else {}
    generator = fit("pdiff", checkpoints, {"base": base, **overrides})
    data = zoo.digits()
    task = ClassifierTask(generator.base_model(), data.test_x, data.test_y, layout=checkpoints.layout)
    return Prepared(checkpoints, generator.sample(16 if quick else 100, seed=seed), task, {"trajectory": True},
                    [f"zoo: {checkpoints.weights.shape[0]} consecutive checkpoints of the base model's last two "
                     f"BatchNorm layers (D = {checkpoints.layout.size}); the rest of the network is the base model"])


RECIPES: dict[str, Callable[[bool, FitFn, int], Prepared]] = {
    "hr": hyper_representations, "gpt": gpt_method, "hd": hyperdiffusion_method, "pdiff": pdiff_method}
TITLES = {"hr": "Hyper-Representations", "gpt": "G.pt", "hd": "HyperDiffusion", "pdiff": "P-diff"}
# The registry names of the generators.
GENERATORS = {"hr": "hr", "gpt": "gpt", "hd": "hyperdiffusion", "pdiff": "pdiff"}
METHODS = tuple(RECIPES)
