"""``weightmem-fast demo``: the study end to end on built-in data (issue 8).

For each method (Hyper-Representations, G.pt, HyperDiffusion, P-diff): build its zoo on the built-in data (digits,
procedural airplanes), train the generator at demo size, sample, audit the samples against the training set and the
baselines, and write one HTML report with a section per method::

    from weightmem_fast.demo import run_demo
    report = run_demo(["pdiff"], "demo_out/", quick=True)     # demo_out/report.html

Every stage is cached (zoos and fitted generators under ``zoo.default_cache_dir()``, audits under the output
directory), so an interrupted demo resumes where it stopped and a second run only rewrites the report.
"""
from .recipes import METHODS
from .run import run_demo

__all__ = ["METHODS", "run_demo"]
