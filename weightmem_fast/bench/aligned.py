"""Benchmark of ``aligned_nearest`` against the study's permutation-aligned distance (issue 9; study_spec §2.3).

Data: N query and M reference one-hidden-layer MLPs as flat weights (G.pt's 784 -> 10 -> 10, D = 7,960, and the
digits 64 -> 10 -> 10, D = 760), in two cases:

- random: every weight N(0, 1) (the acceptance check's data: no structure, so no pair can be pruned);
- permuted copies: half the queries are references with their hidden units permuted and 1e-3 Gaussian noise, the
  other half random (a zoo with memorised models: most pairs are pruned by the sorted-norm lower bound).

Methods, in one process on the same data, each giving every query's nearest aligned distance:

- aligned_nearest: ``weightmem_fast.symmetry.aligned_nearest(query, reference, layout, k=1)``;
- study: the study's method (G.pt ``permute_util.py``): float64 ``torch.cdist`` between all neuron groups, squared
  and reshaped into [M, N, H, H] cost tensors, then ``scipy.optimize.linear_sum_assignment`` per pair in a Python
  loop (one process, not the study's 32), plus the output-bias term.
"""
from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

import numpy as np
import torch
from torch import nn

from ..layout import ParamLayout
from ..symmetry.aligned import HiddenUnits, aligned_nearest
from ..symmetry.transforms import permute
from ._harness import Measurement, environment, format_value, measure, print_report, run_cases

SUMMARY = "aligned_nearest vs the study's cdist cost tensors + scipy linear_sum_assignment per pair"

# Per --sizes preset: (N queries, M references).
SIZES = {"small": (20, 20), "spec": (200, 200)}
ARCHITECTURES = {"gpt_mnist": (784, 10, 10), "digits": (64, 10, 10)}
# Targets from the issue (CPU): speed over the study's method, agreement of the distances.
SPEED = 20.0
RTOL = 1e-6


def _layout(sizes: tuple[int, int, int]) -> ParamLayout:
    i, h, o = sizes
    return ParamLayout.from_module(nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o)))


def _data(case: str, n: int, m: int, layout: ParamLayout) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(m, layout.size, generator=generator)
    query = torch.randn(n, layout.size, generator=generator)
    if case == "permuted copies":
        hidden = HiddenUnits.of(layout).hidden
        half = n // 2
        rows = torch.randint(0, m, (half,), generator=generator)
        perms = torch.rand(half, hidden, generator=generator).argsort(dim=1)
        noise = 1e-3 * torch.randn(half, layout.size, generator=generator)
        query[:half] = permute(reference[rows], layout, [perms]) + noise
    return query, reference


def study_method(query: torch.Tensor, reference: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    """The study's nearest aligned distance per query (float64 cdist cost tensors, scipy per pair)."""
    from scipy.optimize import linear_sum_assignment

    units = HiddenUnits.of(layout)
    q_groups, q_rest = (t.double() for t in units.groups(query))
    r_groups, r_rest = (t.double() for t in units.groups(reference))
    n, m, h = query.shape[0], reference.shape[0], units.hidden
    costs = (torch.cdist(r_groups.reshape(m * h, -1), q_groups.reshape(n * h, -1)) ** 2)
    costs = costs.reshape(m, h, n, h).permute(0, 2, 1, 3).numpy()
    rest = (torch.cdist(r_rest, q_rest) ** 2).numpy()
    best = np.full(n, np.inf)
    for a in range(m):
        for b in range(n):
            rows, cols = linear_sum_assignment(costs[a, b])
            best[b] = min(best[b], costs[a, b][rows, cols].sum() + rest[a, b])
    return torch.from_numpy(np.sqrt(best))


def _ours(query: torch.Tensor, reference: torch.Tensor, layout: ParamLayout) -> torch.Tensor:
    return aligned_nearest(query, reference, layout, k=1)[0][:, 0]


def cases(sizes: str) -> list[tuple[str, str, int, int]]:
    n, m = SIZES[sizes]
    return [(case, arch, n, m) for arch in ARCHITECTURES for case in ("random", "permuted copies")]


def run_case(case: tuple[str, str, int, int], device: str) -> dict[str, Any]:
    name, arch, n, m = case
    layout = _layout(ARCHITECTURES[arch])
    query, reference = (x.to(device) for x in _data(name, n, m, layout))
    timings: dict[str, Measurement] = {}
    for method, fn in (("aligned_nearest", _ours), ("study", study_method)):
        if method == "study" and device != "cpu":
            continue
        print(f"  {name} {arch} {n} x {m}: {method}", file=sys.stderr, flush=True)
        timings[method] = measure(functools.partial(fn, query, reference, layout), device)
    ours = timings["aligned_nearest"].result.double().cpu()
    methods = {}
    for method, t in timings.items():
        entry = {"seconds": t.seconds, "runs": len(t.run_seconds), "extra_peak_bytes": t.extra_peak_bytes}
        if method != "aligned_nearest":
            entry["max_rel_diff"] = float(((t.result.double() - ours).abs() / ours).max())
        methods[method] = entry
    ratios = {f"{method}/aligned_nearest": e["seconds"] / methods["aligned_nearest"]["seconds"]
              for method, e in methods.items() if method != "aligned_nearest"}
    return {"case": name, "sizes": {"arch": arch, "d": layout.size, "n": n, "m": m}, "methods": methods,
            "ratios": ratios}


_HEADER = ("case", "arch (D)", "N x M", "method", "runs", "median s", "extra MB", "max rel diff")


def _rows(records: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(r["case"], f"{r['sizes']['arch']} ({r['sizes']['d']})", f"{r['sizes']['n']} x {r['sizes']['m']}",
             name, str(e["runs"]), format_value(e["seconds"], "{:.3g}"),
             format_value(e["extra_peak_bytes"] / 1e6, "{:.1f}"), format_value(e.get("max_rel_diff"), "{:.1e}"))
            for r in records for name, e in r["methods"].items()]


def _target_lines(records: list[dict[str, Any]], device: str) -> list[str]:
    lines = []
    for r in records:
        if "study/aligned_nearest" not in r["ratios"]:
            lines.append(f"{r['case']} {r['sizes']['arch']}: the study's method runs on the CPU only")
            continue
        ratio, diff = r["ratios"]["study/aligned_nearest"], r["methods"]["study"]["max_rel_diff"]
        verdict = "met" if ratio >= SPEED and diff <= RTOL else "MISSED"
        lines.append(f"{r['case']} {r['sizes']['arch']}: aligned_nearest >= {SPEED:g}x the study's method and "
                     f"distances within {RTOL:g}: {ratio:.3g}x, max rel diff {diff:.1e} -> {verdict}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options beyond the shared ones."""


def run(args: argparse.Namespace) -> int:
    """Runs the cases, prints the table and the target lines, appends one JSON line per case to ``args.out``."""
    env = environment(args.device)
    records = run_cases("aligned", args, env, cases(args.sizes), run_case)
    print_report("aligned", args.device, env, "nearest permutation-aligned distance per query (k = 1)", _HEADER,
                 _rows(records), {"aligned_nearest": "weightmem_fast.symmetry.aligned_nearest(q, r, layout, k=1)",
                                  "study": "float64 cdist cost tensors + scipy linear_sum_assignment per pair"},
                 _target_lines(records, args.device))
    return 0
