"""Benchmarks of weightmem_fast's ops: ``python -m weightmem_fast.bench <op> [--device cpu|cuda] [--sizes small|spec]
[--out FILE]`` (also ``weightmem-fast bench <op> ...``).

Each op prints a table and one line per target of its issue; ``--out`` appends one JSON line per case, carrying
build_info(), versions, device name, threads and sizes (STYLE §9).
"""
from __future__ import annotations

import argparse
from typing import Callable, NamedTuple, Sequence

import weightmem_fast as wmf

from . import aligned, chamfer, distances, evaluate, similarity


class BenchOp(NamedTuple):
    """A benchmark: its one-line help, its own options, and the function that runs it and returns an exit code."""

    summary: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# Adding a benchmark: a module with SUMMARY, add_arguments(parser) and run(args) -> int, registered here.
OPS: dict[str, BenchOp] = {
    "distances": BenchOp(distances.SUMMARY, distances.add_arguments, distances.run),
    "similarity": BenchOp(similarity.SUMMARY, similarity.add_arguments, similarity.run),
    "evaluate": BenchOp(evaluate.SUMMARY, evaluate.add_arguments, evaluate.run),
    "chamfer": BenchOp(chamfer.SUMMARY, chamfer.add_arguments, chamfer.run),
    "aligned": BenchOp(aligned.SUMMARY, aligned.add_arguments, aligned.run),
}


def _device(value: str) -> str:
    if value not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"must be 'cpu' or 'cuda'; got {value!r}")
    # Checked here, not per op: "auto" dispatch would otherwise time the torch twins on a GPU without kernels.
    if value == "cuda" and not wmf.cuda_available():
        raise argparse.ArgumentTypeError(
            "'cuda' needs a visible GPU and the CUDA kernels (weightmem_fast.cuda_available() is False); "
            "see weightmem_fast.build_info()"
        )
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--device", type=_device, default="cpu", metavar="{cpu,cuda}",
        help="where the inputs live and every method runs (default: cpu); cuda compares with torch on CUDA with "
        "torch.backends.cuda.matmul left at its settings",
    )
    common.add_argument(
        "--sizes", choices=("small", "spec"), default="spec",
        help="spec: the issue's sizes (default; minutes on a 2-core CPU); small: a few seconds, for smoke tests",
    )
    common.add_argument("--out", metavar="FILE", help="append one JSON line per case to FILE")
    return common


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds one subcommand per registered benchmark to ``parser``; parsed args carry ``handler(args) -> int``.

    Shared by ``python -m weightmem_fast.bench`` and the ``weightmem-fast bench`` subcommand.
    """
    common = _common_options()
    ops = parser.add_subparsers(title="benchmarks", dest="op", metavar="OP", required=True)
    for name, op in OPS.items():
        sub = ops.add_parser(name, parents=[common], help=op.summary, description=op.summary)
        op.add_arguments(sub)
        sub.set_defaults(handler=op.run)
    every = ops.add_parser("all", parents=[common], help="every benchmark above, one after the other, with its "
                           "defaults and the shared options", description="Runs every benchmark with its default "
                           "options and the shared --device / --sizes / --out.")
    every.set_defaults(handler=_run_all)


def _run_all(args: argparse.Namespace) -> int:
    """Each registered benchmark with its own defaults plus the shared options; the worst exit code."""
    shared = ["--device", args.device, "--sizes", args.sizes] + (["--out", args.out] if args.out else [])
    status = 0
    for name, op in OPS.items():
        print(f"== {name} ==", flush=True)
        parser = argparse.ArgumentParser(prog=name, parents=[_common_options()])
        op.add_arguments(parser)
        status = max(status, op.run(parser.parse_args(shared)))
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Parses ``argv`` (default ``sys.argv[1:]``) and runs the chosen benchmark.

    Returns:
        The benchmark's exit code: 0 once it has run, whether or not its targets are met.

    Raises:
        SystemExit: bad arguments or ``--help`` (argparse's exit codes 2 and 0).
    """
    parser = argparse.ArgumentParser(
        prog="python -m weightmem_fast.bench",
        description="Benchmarks of weightmem_fast's ops against their baselines, on the same data in one process.",
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
