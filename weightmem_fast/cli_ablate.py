"""``weightmem-fast ablate``: the study's modeling-factor table for one generator (``weightmem_fast.ablate``)."""
from __future__ import annotations

import argparse
import json
from typing import Any

from .cli_audit import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Adds ``ablate``'s arguments to its subparser."""
    from .ablation import FACTORS, METHODS

    parser.add_argument("--method", required=True, choices=METHODS, help="the generator to retrain")
    parser.add_argument("--factors", default=None,
                        help=f"comma-separated factors (default: every one that applies to the method): "
                        f"{', '.join(f'{name} ({text})' for name, text in FACTORS.items())}".replace("%", "%%"))
    parser.add_argument("--seeds", default="0,1", help="comma-separated fit and sampling seeds (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output directory (default: weightmem_fast_ablate_<method>)")
    parser.add_argument("--quick", action="store_true", help="tiny zoos and fits: a smoke run of every cell")
    parser.add_argument("--zoo", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the method's demo zoo, e.g. --zoo n_runs=128 (VALUE is JSON or text); "
                        "repeatable")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="a change to the generator's demo config that every row starts from, e.g. --config "
                        "'optim={\"steps\": 1000}' (VALUE is JSON or text); repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Plans (a bad factor or seed is a usage error), runs the ablation and prints where the report is."""
    from .ablation import ablate, applicable
    from .demo.recipes import base_config

    changes = _settings("--config", args.config)
    try:
        base = base_config(args.method, args.quick).replace(**changes)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--config: {error}") from None
    valid = applicable(args.method, base)
    factors = valid if args.factors is None else [f.strip() for f in args.factors.split(",") if f.strip()]
    wrong = [f for f in factors if f not in valid]
    if wrong or not factors:
        raise UsageError(f"--factors: {wrong or 'none given'} not valid for {args.method}; choose from "
                         f"{','.join(valid)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated ints; got {args.seeds!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct ints; got {args.seeds!r}")
    out = args.out or f"weightmem_fast_ablate_{args.method}"
    result = ablate(args.method, factors, seeds=seeds, quick=args.quick, out=out,
                    zoo_options=_settings("--zoo", args.zoo), config=changes, progress=not args.quiet)
    print(f"report: {out}/report.html ({len(result.cells)} fits; table: {out}/ablation.csv)")
    return 0


def _settings(option: str, settings: list[str]) -> dict[str, Any]:
    """KEY=VALUE arguments as a dict; VALUE parsed as JSON when it is JSON, else kept as text."""
    out = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} takes KEY=VALUE; got {setting!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
