"""Benchmark of ``evaluate`` against the study's per-model loop and ``torch.func.vmap(functional_call)`` (issue 5).

Cases: N MLPs in G.pt's family (784 -> 10 -> 10 on 28 x 28 inputs, and the digits size 64 -> 10 -> 10) and N
Hyper-Representations CNNs (``zoo.cnn`` on 1 x 28 x 28), weights at a freshly initialised model's scale, on S
random inputs; every method evaluates the same models on the same inputs in this one process. Agreement is the
share of (model, input) predictions equal to ``evaluate``'s (1.0: ``evaluate`` reproduces the loop exactly).
"""
from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

import weightmem_fast as wmf
from weightmem_fast.layout import ParamLayout
from weightmem_fast.zoo import cnn, mlp
from weightmem_fast.zoo.loop import activation_width

from ._harness import Measurement, environment, format_value, measure, print_report, run_cases

SUMMARY = "evaluate vs the per-model loop and vmap(functional_call)"


class Case(NamedTuple):
    """``arch`` "mlp" (input width ``width``) or "cnn" (1 x 28 x 28 inputs); N models, S inputs."""

    arch: str
    width: int
    models: int
    samples: int


# Per --sizes preset and device. The GPU "spec" preset evaluates the 10,000 MLPs in one call.
CASES = {
    ("small", "cpu"): (Case("mlp", 784, 50, 500), Case("mlp", 64, 50, 500), Case("cnn", 784, 10, 200)),
    ("spec", "cpu"): (Case("mlp", 784, 1000, 10_000), Case("mlp", 64, 1000, 10_000), Case("cnn", 784, 500, 2_000)),
    ("small", "cuda"): (Case("mlp", 784, 50, 500), Case("mlp", 64, 50, 500), Case("cnn", 784, 10, 200)),
    ("spec", "cuda"): (Case("mlp", 784, 10_000, 10_000), Case("mlp", 64, 10_000, 10_000),
                       Case("cnn", 784, 500, 10_000)),
}
VMAP_CHUNK = 250  # models per vmap call at most: all 1000 MLPs at once need several GB of activations
VMAP_ACTIVATIONS = 1 << 27  # and at most this many activation values per call (512 MB: CNN maps are large)
# Targets from the issue (CPU): evaluate / loop and evaluate / vmap speed-ups per architecture.
TARGETS = {"mlp": {"loop": 2.0, "vmap": 2.0}, "cnn": {"loop": 3.0}}
_CPU_ONLY = "a CPU target, for information on this device"


@dataclass(frozen=True)
class Inputs:
    template: torch.nn.Module
    layout: ParamLayout
    weights: torch.Tensor
    inputs: torch.Tensor
    labels: torch.Tensor


def _evaluate(data: Inputs) -> torch.Tensor:
    return wmf.evaluate(data.template, data.weights, data.inputs, data.labels, data.layout).predictions


def _loop(data: Inputs) -> torch.Tensor:
    return wmf.reference.evaluate(data.template, data.weights, data.inputs, data.labels, data.layout).predictions


def _vmap(data: Inputs) -> torch.Tensor:
    """The torch.func ensembling recipe, in chunks of models sized to VMAP_CHUNK and VMAP_ACTIVATIONS."""
    base = dict(data.template.named_parameters())
    width = activation_width(data.template, data.inputs[0])
    chunk = max(1, min(VMAP_CHUNK, VMAP_ACTIVATIONS // (data.inputs.shape[0] * width)))
    out = []
    for start in range(0, data.weights.shape[0], chunk):
        block = data.weights[start : start + chunk]
        params = {e.name: block[:, e.offset : e.offset + e.numel].reshape(-1, *e.shape) for e in data.layout.entries}
        logits = torch.func.vmap(lambda p: torch.func.functional_call(data.template, base | p, (data.inputs,)))(params)
        out.append(logits.argmax(dim=2))
    return torch.cat(out)


class Method(NamedTuple):
    fn: Callable[[Inputs], torch.Tensor]
    description: str


METHODS = {
    "evaluate": Method(_evaluate, "weightmem_fast.evaluate (stacked GEMMs)"),
    "loop": Method(_loop, "reference.evaluate: load_state_dict + forward per model (the study's way)"),
    "vmap": Method(_vmap, f"torch.func.vmap(functional_call) over chunks of <= {VMAP_CHUNK} models"),
}


def _template(case: Case) -> torch.nn.Module:
    return mlp(case.width, 10, 10) if case.arch == "mlp" else cnn(1, 28, 10)


def _inputs(case: Case, device: str) -> Inputs:
    """N freshly initialised models (torch's default init, one seed each) and S standard-normal inputs."""
    torch.manual_seed(case.width)
    template = _template(case)
    layout = ParamLayout.from_module(template)
    weights = layout.flatten([_template(case).state_dict() for _ in range(case.models)])
    shape = (case.width,) if case.arch == "mlp" else (1, 28, 28)
    inputs = torch.randn(case.samples, *shape)
    labels = torch.randint(0, 10, (case.samples,))
    return Inputs(template.to(device), layout, weights.to(device), inputs.to(device), labels.to(device))


def _name(case: Case) -> str:
    return f"mlp {case.width}-10-10" if case.arch == "mlp" else "cnn 1x28x28 (HR)"


def run_case(case: Case, device: str) -> dict[str, Any]:
    data = _inputs(case, device)
    timings: dict[str, Measurement] = {}
    for name, method in METHODS.items():
        print(f"  {_name(case)} N={case.models} S={case.samples}: {name}", file=sys.stderr, flush=True)
        timings[name] = measure(functools.partial(method.fn, data), device)
    ours = timings["evaluate"].result
    methods = {
        name: {"seconds": t.seconds, "runs": len(t.run_seconds), "extra_peak_bytes": t.extra_peak_bytes,
               "agreement": float((t.result == ours).double().mean()) if t.result is not None else None}
        for name, t in timings.items()
    }
    base = methods["evaluate"]["seconds"]
    ratios = {f"{name}/evaluate": m["seconds"] / base for name, m in methods.items() if name != "evaluate"}
    return {"case": _name(case), "arch": case.arch, "sizes": {"n": case.models, "s": case.samples,
                                                              "width": case.width},
            "methods": methods, "ratios": ratios}


_HEADER = ("case", "N", "S", "method", "runs", "median s", "extra MB", "agreement")


def _rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (record["case"], str(record["sizes"]["n"]), str(record["sizes"]["s"]), name, str(m["runs"]),
         format_value(m["seconds"], "{:.3g}"), format_value(m["extra_peak_bytes"] / 1e6, "{:.1f}"),
         format_value(m["agreement"], "{:.6f}"))
        for record in records for name, m in record["methods"].items()
    ]


def _target_lines(records: list[dict[str, Any]], device: str) -> list[str]:
    judged = device == "cpu"
    lines = []
    for arch, goals in TARGETS.items():
        for baseline, threshold in goals.items():
            key = f"{baseline}/evaluate"
            chosen = [record for record in records if record["arch"] == arch]
            values = [record["ratios"][key] for record in chosen]
            verdict = ("met" if all(v >= threshold for v in values) else "MISSED") if judged else _CPU_ONLY
            parts = ", ".join(f"{r['case']} {v:.2f}x" for r, v in zip(chosen, values))
            lines.append(f"{arch}: evaluate >= {threshold:g}x {baseline} ({key}): {parts} -> {verdict}")
    memory_ok = all(r["methods"]["evaluate"]["extra_peak_bytes"] <= r["methods"]["vmap"]["extra_peak_bytes"]
                    for r in records)
    verdict = ("met" if memory_ok else "MISSED") if judged else _CPU_ONLY
    lines.append(f"evaluate peak memory <= vmap's -> {verdict}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This benchmark has no options beyond the shared --device/--sizes/--out."""


def run(args: argparse.Namespace) -> int:
    """Runs the cases, prints the table and the target lines, appends one JSON line per case to ``args.out``."""
    env = environment(args.device)
    records = run_cases("evaluate", args, env, list(CASES[args.sizes, args.device]), run_case)
    legend = {name: method.description for name, method in METHODS.items()}
    print_report("evaluate", args.device, env, "freshly initialised models, random inputs, 10 classes", _HEADER, _rows(records),
                 legend, _target_lines(records, args.device))
    return 0
