"""The ``weightmem-fast`` command: ``weightmem-fast info`` and ``weightmem-fast bench <op> ...``."""
from __future__ import annotations

import argparse
import json
from typing import Sequence

import torch

import weightmem_fast as wmf


def _info(args: argparse.Namespace) -> int:
    print(
        json.dumps(
            {
                "version": wmf.__version__,
                "build_info": wmf.build_info(),
                "cuda_available": wmf.cuda_available(),
                "torch": torch.__version__,
            },
            indent=2,
        )
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    # Imported here so `weightmem-fast info` does not load the benchmark modules.
    from .bench.__main__ import configure_parser

    parser = argparse.ArgumentParser(
        prog="weightmem-fast", description="Exact, fast audits of neural-network weight generators for memorisation."
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    info = commands.add_parser(
        "info",
        help="print the build (weightmem_fast.build_info()), CUDA availability and torch version as JSON",
        description="Print the build (weightmem_fast.build_info()), CUDA availability and torch version as JSON.",
    )
    info.set_defaults(handler=_info)
    bench = commands.add_parser(
        "bench",
        help="run a benchmark (same as python -m weightmem_fast.bench)",
        description="Benchmarks of weightmem_fast's ops against their baselines, on the same data in one process.",
    )
    configure_parser(bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``weightmem-fast`` console script.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The command's exit code (0 on success).

    Raises:
        SystemExit: bad arguments or ``--help`` (argparse's exit codes 2 and 0).
    """
    args = _parser().parse_args(argv)
    return args.handler(args)
