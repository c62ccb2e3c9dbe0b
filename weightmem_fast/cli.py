"""The ``weightmem-fast`` command: ``demo``, ``audit``, ``ablate``, ``bench`` and ``info``.

Errors are one line on stderr and exit code 2 for bad arguments or inputs, 1 for a failure while running;
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import torch

import weightmem_fast as wmf

from .cli_audit import UsageError


def _info(args: argparse.Namespace) -> int:
    print(json.dumps({"version": wmf.__version__, "build_info": wmf.build_info(),
                      "cuda_available": wmf.cuda_available(), "torch": torch.__version__}, indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import METHODS, run_demo

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(f"--methods must be a comma-separated list of {','.join(METHODS)}; got {args.methods!r}")
    _set_threads(args.threads)
    report = run_demo(methods, args.out, quick=args.quick, seed=args.seed, progress=not args.quiet)
    print(f"report: {report}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from .cli_ablate import run

    _set_threads(args.threads)
    return run(args)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1; got {threads}")
        torch.set_num_threads(threads)


def _threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's, one per core); use 1 when other jobs share the "
                        "cores: small training steps slow down sharply when threads wait on busy cores")


def _audit(args: argparse.Namespace) -> int:
    from .cli_audit import run

    return run(args)


def _parser() -> argparse.ArgumentParser:
    # Imported here so `weightmem-fast info` does not load the benchmark modules.
    from .bench.__main__ import configure_parser
    from .cli_ablate import configure_parser as configure_ablate
    from .demo import METHODS

    parser = argparse.ArgumentParser(
        prog="weightmem-fast", description="Exact, fast audits of neural-network weight generators for memorisation.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="train the study's four generators on built-in data, audit them, write an HTML report",
        description="Builds (or reuses cached) zoos on built-in data, trains the four weight generators of the study "
        "at demo size, audits each against its training set and baselines, and writes one HTML report with a "
        "section per method (about 10 minutes on 2 CPU cores; --quick about 2).")
    demo.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    demo.add_argument("--out", default="weightmem_fast_demo", help="output directory (default: %(default)s)")
    demo.add_argument("--quick", action="store_true", help="tiny zoos and fits: a smoke run of every stage")
    demo.add_argument("--seed", type=int, default=0, help="seed of sampling and audits (default: 0)")
    _threads_argument(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo)

    audit = commands.add_parser(
        "audit", help="audit generated checkpoints against training checkpoints (classifiers or neural fields)",
        description="Audits generated checkpoints against training checkpoints: distances, behavioural "
        "similarity and quality (classifiers: error sets and accuracy on a test set; neural fields: Chamfer "
        "distances of their surfaces), noise baselines and the verdict, written as an HTML report with JSON and CSV.")
    audit.add_argument("--training", required=True, metavar="PATH",
                       help="training checkpoints: a directory of .pt/.safetensors state_dicts or a flat zoo")
    audit.add_argument("--generated", required=True, metavar="PATH", help="generated checkpoints (same forms)")
    audit.add_argument("--task", choices=("classifier", "field"), default="classifier",
                       help="what behaviour means: classifier (predictions on a test set) or field (occupancy "
                       "networks' surfaces; --data then holds 'training_clouds' and 'test_clouds')")
    audit.add_argument("--template", required=True, metavar="MODULE:CALLABLE",
                       help="the architecture: CALLABLE() returns the torch.nn.Module the checkpoints load into")
    audit.add_argument("--data", default="digits", metavar="digits|PATH",
                       help="classifier test set: 'digits' or a .safetensors/.pt file with 'inputs' and 'labels'; "
                       "field: a .safetensors/.pt file with 'training_clouds' and 'test_clouds'")
    audit.add_argument("--out", required=True, metavar="DIR", help="output directory of the report")
    audit.add_argument("--no-baselines", action="store_true", help="skip the noise baselines (the frontier stays)")
    audit.add_argument("--align", action="store_true",
                       help="weight distances after aligning hidden units (one-hidden-layer MLPs, exact)")
    audit.add_argument("--k", type=int, default=3, help="nearest training models kept per model (default: 3)")
    audit.add_argument("--seed", type=int, default=0, help="seed of baselines, frontier and bootstrap")
    audit.add_argument("--grid", type=int, default=300, help="decision-boundary grid size (default: the study's 300)")
    audit.add_argument("--quiet", action="store_true", help="no progress bars")
    audit.set_defaults(handler=_audit)

    ablate = commands.add_parser(
        "ablate", help="retrain one generator with one factor changed at a time and tabulate accuracy vs novelty",
        description="The study's modeling-factor table (and data-scaling study) for one generator: each level of "
        "each factor retrains the generator at demo size, samples, and audits the samples against the same "
        "training set and baselines. Fits and audits are cached, so an interrupted run resumes. Writes "
        "report.html, ablation.json and ablation.csv.")
    configure_ablate(ablate)
    _threads_argument(ablate)
    ablate.set_defaults(handler=_ablate)

    bench = commands.add_parser(
        "bench", help="run a benchmark (same as python -m weightmem_fast.bench)",
        description="Benchmarks of weightmem_fast's ops against their baselines, on the same data in one process.")
    configure_parser(bench)

    info = commands.add_parser(
        "info", help="print the build (weightmem_fast.build_info()), CUDA availability and torch version as JSON",
        description="Print the build (weightmem_fast.build_info()), CUDA availability and torch version as JSON.")
    info.set_defaults(handler=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``weightmem-fast`` console script.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The command's exit code: 0 on success, 2 for bad arguments or inputs, 1 for a failure while running.

    Raises:
        SystemExit: bad arguments or ``--help`` (argparse's exit codes 2 and 0).
    """
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        if args.debug:
            raise
        print(f"weightmem-fast {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"weightmem-fast {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the CLI's contract: one line, not a traceback (--debug shows it)
        if args.debug:
            raise
        print(f"weightmem-fast {args.command}: failed: {type(error).__name__}: {error} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1
