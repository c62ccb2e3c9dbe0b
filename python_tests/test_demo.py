"""``weightmem-fast demo --quick`` end to end (issue 8): every method's zoo, generator, audit and report section,
through the console command's code path."""
from __future__ import annotations

import json

import pytest

from weightmem_fast import cli
from weightmem_fast.demo import METHODS, run_demo
from weightmem_fast.demo.recipes import TITLES


@pytest.mark.slow  # builds four tiny zoos and generators when the cache is cold (about two minutes)
def test_quick_demo_writes_a_report_with_every_method(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--quiet", "--out", str(tmp_path)]) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for method in METHODS:
        title = TITLES[method]
        assert title in html
        doc = json.loads((tmp_path / title / "audit.json").read_text())
        assert doc["groups"]["generated"]["models"] >= 8 and "generated" in doc["verdicts"]
    assert json.loads((tmp_path / "G.pt" / "audit.json").read_text())["task"] == "classifier"
    assert json.loads((tmp_path / "HyperDiffusion" / "audit.json").read_text())["task"] == "field"


def test_run_demo_rejects_bad_methods(tmp_path):
    with pytest.raises(ValueError, match=r"methods must be a non-empty list of \['hr', 'gpt', 'hd', 'pdiff'\]"):
        run_demo(["gpt", "diffusion"], tmp_path)
    with pytest.raises(ValueError, match="non-empty"):
        run_demo([], tmp_path)
