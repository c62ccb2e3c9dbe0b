"""``weightmem-fast audit``: user checkpoints in, report out. Reads the inputs the command line names and turns
every problem with them into a ``UsageError`` (exit code 2) that names the argument.

Under ``torchrun --nproc-per-node N`` (WORLD_SIZE > 1) the same command runs the sharded audit (issue 10): every
rank joins the process group (``distributed.launch``), reads only its rows of the training set (a flat zoo: its
rows from disk; a checkpoint directory: read whole, then cut), runs ``audit(..., sharded=True)``, and rank 0 alone
writes the report, without the figures (they need every training model on one rank).
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import torch
from torch import nn

from . import io
from .distributed.shards import shard_rows
from .layout import ParamLayout


class UsageError(Exception):
    """A bad command-line input: printed as one line, exit code 2."""


def template_from_spec(spec: str) -> nn.Module:
    """``MODULE:CALLABLE`` (e.g. ``mypkg.models:Net``): imports MODULE and calls CALLABLE() for the architecture."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--template must be MODULE:CALLABLE (e.g. mypkg.models:Net); got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--template {spec}: cannot import it ({error})") from error
    template = factory()
    if not isinstance(template, nn.Module):
        raise UsageError(f"--template {spec}: calling it returned {type(template).__name__}, not a torch.nn.Module")
    return template


def load_weights(option: str, path: str, layout: ParamLayout, shard: tuple[int, int] | None = None) -> io.Zoo:
    """A flat zoo directory (``io.save_zoo``) or a directory of checkpoints (.pt / .safetensors), in ``layout``;
    with ``shard=(rank, world)`` only that rank's rows (``io.load_zoo``'s split)."""
    root = Path(path)
    if not root.exists():
        raise UsageError(f"{option} {path}: no such file or directory")
    try:
        if (root / io.WEIGHTS_FILE).is_file():
            zoo = io.load_zoo(root, shard=shard)
            if zoo.layout != layout:
                raise UsageError(f"{option} {path}: its layout ({zoo.layout.size} parameters, tensors "
                                 f"{[e.name for e in zoo.layout.entries][:4]}...) does not match the template's "
                                 f"({layout.size} parameters)")
            return zoo
        zoo = io.load_checkpoints(root, layout, allow_nonfinite=option == "--generated")
        return zoo if shard is None else zoo[slice(*shard_rows(len(zoo), *shard))]
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as error:
        raise UsageError(f"{option} {path}: {error}") from error


def classifier_data(spec: str, template: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Test inputs and labels: "digits" (scikit-learn's bundled digits, the package's test split), or a
    .safetensors / .pt file holding tensors "inputs" [T, ...] and "labels" [T]. Digits images [T, 1, 8, 8] are
    flattened to [T, 64] when the template takes vectors."""
    if spec == "digits":
        from .zoo import digits

        data = digits()
        inputs, labels = data.test_x, data.test_y
        try:
            with torch.no_grad():
                template.eval()(inputs[:2])
        except RuntimeError:
            inputs = inputs.flatten(1)
        return inputs, labels
    inputs, labels = _tensors_file(spec, ("inputs", "labels"), "'digits' or ")
    return inputs, labels.long()


def field_data(spec: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and held-out surface clouds for a field audit: a .safetensors / .pt file holding tensors
    "training_clouds" [N_train, P, 3] (one per training model, in row order) and "test_clouds" [N_test, P, 3]."""
    training, test = _tensors_file(spec, ("training_clouds", "test_clouds"), "")
    return training.float(), test.float()


def _tensors_file(spec: str, names: tuple[str, ...], alternatives: str) -> tuple[torch.Tensor, ...]:
    """The named tensors of a .safetensors or .pt (weights_only) file given as --data."""
    wanted = " and ".join(repr(name) for name in names)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"--data must be {alternatives}a .safetensors/.pt file with {wanted}; {spec}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(path))
        else:
            tensors = torch.load(path, map_location="cpu", weights_only=True)
        return tuple(tensors[name] for name in names)
    except Exception as error:  # any unreadable file is the user's input problem
        raise UsageError(f"--data {spec}: cannot read tensors {wanted} ({error})") from error


def run(args: argparse.Namespace) -> int:
    from .distributed.launch import torchrun_group

    with torchrun_group() as (rank, world):
        return _run(args, rank, world)


def _run(args: argparse.Namespace, rank: int, world: int) -> int:
    from .audit import ClassifierTask, FieldTask, audit

    template = template_from_spec(args.template)
    layout = ParamLayout.from_module(template)
    if args.align:
        from .symmetry.aligned import HiddenUnits

        try:
            HiddenUnits.of(layout)
        except ValueError as error:
            raise UsageError(f"--align needs a one-hidden-layer MLP template: {error}") from error
    sharded = world > 1
    training = load_weights("--training", args.training, layout, shard=(rank, world) if sharded else None)
    generated = load_weights("--generated", args.generated, layout)
    try:
        if args.task == "field":
            task = FieldTask(layout, *field_data(args.data))
        else:
            task = ClassifierTask(template, *classifier_data(args.data, template), layout=layout)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--data {args.data} / --template {args.template}: {error}") from error
    result = audit(generated, training, task, baselines="none" if args.no_baselines else "default",
                   progress=not args.quiet and rank == 0, k=args.k, seed=args.seed, align=args.align,
                   sharded=sharded)
    if rank != 0:
        return 0
    if sharded:
        note = (f"Sharded audit over {world} ranks: figures are left out (they need every training model on one "
                "rank), and arrays.safetensors holds rank 0's training rows only.")
        report = result.report(args.out, tasks={"audit": task}, figures=lambda result, task: {},
                               notes={"audit": note})
    else:
        report = result.report(args.out, tasks={"audit": task}, grid=args.grid)
    print(f"report: {report}")
    return 0
