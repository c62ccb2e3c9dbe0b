"""The modeling-factor ablation (issue 11): every level changes the config field it claims to, bad choices fail with
the valid ones listed, and a quick ablation through the console command gives a complete table that a second run
reads back from the cache without refitting or re-auditing."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from weightmem_fast import cli
from weightmem_fast.ablation import FACTORS, METHODS, AblationResult, ablate, applicable, levels
from weightmem_fast.ablation import run as ablate_run
from weightmem_fast.demo.recipes import base_config, keep_fraction
from weightmem_fast.generators import Generator
from weightmem_fast.io import Zoo
from weightmem_fast.layout import ParamLayout

APPLICABLE = {"hr": ["epochs", "size", "dropout", "noise", "data"],
              "gpt": ["epochs", "size", "dropout", "noise", "data"],
              "hd": ["epochs", "size", "dropout", "noise", "data", "permute"],
              "pdiff": ["epochs", "noise", "data"]}


def changed_fields(before, after) -> dict:
    """{field: (before, after)} of the top-level config fields that differ (nested optimiser stages compared whole)."""
    a, b = before.to_dict(), after.to_dict()
    return {key: (a[key], b[key]) for key in a if a[key] != b[key]}


@pytest.mark.parametrize("method", METHODS)
def test_each_method_takes_the_factors_its_config_has(method):
    assert applicable(method, base_config(method, quick=False)) == APPLICABLE[method]
    assert set(APPLICABLE[method]) <= set(FACTORS)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_every_level_changes_the_config_it_claims_to(method, quick):
    base = base_config(method, quick)
    for factor in applicable(method, base):
        planned, _ = levels(method, factor, base)
        assert planned and all(level.factor == factor for level in planned)
        for level in planned:
            diff = changed_fields(base, level.apply(base))
            if factor == "epochs":
                fraction = {"epochs 33.3 %": 1 / 3, "epochs 50 %": 1 / 2}[level.name]
                stages = [f.name for f in dataclasses.fields(base) if f.name.endswith("optim")]
                assert set(diff) == set(stages)
                for stage in stages:
                    old, new = diff[stage]
                    assert new["steps"] == max(1, round(old["steps"] * fraction)) < old["steps"]
                    assert new["warmup_steps"] < new["steps"] or new["warmup_steps"] == 0
                    assert {k: v for k, v in new.items() if k not in ("steps", "warmup_steps")} == \
                        {k: v for k, v in old.items() if k not in ("steps", "warmup_steps")}
            elif factor == "size":
                width, heads, depth = ("d_model", "heads", "layers") if method == "hr" else ("width", "heads", "depth")
                if "layer" in level.name:
                    step = 1 if level.name.startswith("+") else -1
                    assert diff == {depth: (getattr(base, depth), getattr(base, depth) + step)}
                else:
                    assert {width, heads} <= set(diff) <= {width, heads, "d_ff"}
                    grows = level.name.startswith("+")
                    assert (diff[heads][1] > diff[heads][0]) == grows and (diff[width][1] > diff[width][0]) == grows
                    # the head size stays
                    assert diff[width][1] // diff[heads][1] == getattr(base, width) // getattr(base, heads)
                    assert diff[width][1] % diff[heads][1] == 0
            elif factor == "dropout":
                assert diff == {"dropout": (0.0, {"+10 % dropout": 0.1, "+20 % dropout": 0.2}[level.name])}
            elif factor == "noise":
                assert diff == ({"input_noise": (base.input_noise, 10 * base.input_noise)} if method == "pdiff"
                                else {"weight_noise": (0.0, 0.1)})
            elif factor == "data":
                assert diff == {} and level.data_fraction == {"data 25 %": 0.25, "data 50 %": 0.5,
                                                               "data 75 %": 0.75}[level.name]
            elif factor == "permute":
                assert diff == {"permutation_augment": (1, int(level.name.split("x")[1]))}
            if factor != "data":
                assert level.data_fraction == 1.0


def test_levels_that_cannot_apply_are_left_out_with_a_note():
    base = base_config("gpt", quick=False)  # a one-block transformer
    planned, notes = levels("gpt", "size", base)
    assert [level.name for level in planned] == ["+dim & head", "+layer", "-dim & head"]
    assert len(notes) == 1 and "-layer" in notes[0] and "depth = 1" in notes[0]
    one_head = base.replace(heads=1, width=32)
    assert [level.name for level in levels("gpt", "size", one_head)[0]] == ["+dim & head", "+layer"]


def test_bad_method_factor_and_seeds_name_the_valid_choices():
    base = base_config("pdiff", quick=True)
    with pytest.raises(ValueError, match=r"unknown method 'diffusion'; methods: \['hr', 'gpt', 'hd', 'pdiff'\]"):
        levels("diffusion", "epochs", base)
    with pytest.raises(ValueError, match=r"factor 'dropout' does not apply to pdiff.*\['epochs', 'noise', 'data'\]"):
        levels("pdiff", "dropout", base)
    with pytest.raises(ValueError, match=r"unknown factor 'width'; factors: \['epochs', 'size'"):
        levels("pdiff", "width", base)
    with pytest.raises(ValueError, match="does not apply to hr"):
        ablate("hr", ["permute"], quick=True)
    with pytest.raises(ValueError, match="seeds must be a non-empty sequence of distinct ints"):
        ablate("hr", ["epochs"], seeds=[0, 0], quick=True)
    with pytest.raises(ValueError, match="factors must be distinct"):
        ablate("hr", ["epochs", "epochs"], quick=True)


def test_cli_ablate_usage_errors_exit_2(capsys):
    assert cli.main(["ablate", "--method", "pdiff", "--factors", "epochs,size"]) == 2
    assert "choose from epochs,noise,data" in capsys.readouterr().err
    assert cli.main(["ablate", "--method", "hr", "--seeds", "0,x"]) == 2
    assert cli.main(["ablate", "--method", "hr", "--zoo", "n_runs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_keep_fraction_keeps_whole_first_runs_and_the_held_out_ones():
    layout = ParamLayout.from_named_tensors([("w", (2,))])
    rows = [{"run": run, "step": step} for run in range(10) for step in range(3)]
    zoo_ = Zoo(torch.arange(60.0).reshape(30, 2), layout, rows)
    kept = keep_fraction(zoo_, 0.25, held_out_runs=2)
    assert sorted({row["run"] for row in kept.metadata}) == [0, 1, 8, 9]  # ceil(0.25 * 8) = 2 training runs
    assert torch.equal(kept.weights, zoo_.weights[[0, 1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29]])
    assert keep_fraction(zoo_, 1.0) is zoo_
    plain = Zoo(torch.randn(7, 2), layout)
    assert torch.equal(keep_fraction(plain, 0.5).weights, plain.weights[:4])
    assert len(keep_fraction(plain, 0.01)) == 2  # at least two models


@pytest.mark.slow  # about a minute: 13 levels x 2 seeds of a tiny HR when the cache is cold
def test_quick_ablation_writes_a_complete_table_and_resumes_from_the_cache(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ablation"
    assert cli.main(["ablate", "--method", "hr", "--quick", "--quiet", "--threads", "1", "--out", str(out)]) == 0
    result = AblationResult.load(out)
    rows = {row["level"]: row for row in result.rows()}
    expected = ["training", "default", "epochs 33.3 %", "epochs 50 %", "+dim & head", "+layer", "-dim & head",
                "-layer", "+10 % dropout", "+20 % dropout", "+Gaussian noise", "data 25 %", "data 50 %",
                "data 75 %"]
    assert list(rows) == expected
    for level, row in rows.items():
        assert math.isfinite(row["quality"]) and 0 <= row["quality"] <= 1 and row["mean_min_l2"] > 0, level
        if level != "training":
            assert row["seeds"] == 2 and math.isfinite(row["quality_std"]) and row["parameters"] > 0
            assert 0 <= row["beyond_frontier"] <= 1 and 0 <= row["near_copies"] <= 1 and row["fit_seconds"] > 0
    assert rows["+dim & head"]["parameters"] > rows["default"]["parameters"] > rows["-dim & head"]["parameters"]
    assert rows["data 25 %"]["training_models"] < rows["data 50 %"]["training_models"] < \
        rows["default"]["training_models"]
    assert set(result.training) == {"default", "data 25 %", "data 50 %", "data 75 %"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Data scaling" in html and "+20 % dropout" in html and "audits/report.html" in html
    assert (out / "audits" / "report.html").is_file() and (out / "ablation.csv").read_text().count("\n") == 1 + 14

    # A second run refits nothing and re-audits nothing: every cell and audit comes from the cache.
    def refuse(*args, **kwargs):
        raise AssertionError("a cached cell was recomputed")

    monkeypatch.setattr(Generator, "fit", refuse)
    monkeypatch.setattr(ablate_run, "audit", refuse)
    again = ablate("hr", seeds=[0, 1], quick=True, progress=False)
    assert json.dumps(again.rows()) == json.dumps(result.rows())


def test_ablate_is_the_packages_function_loaded_on_first_use():
    import weightmem_fast as wmf
    from weightmem_fast import ablation

    assert wmf.ablate is ablation.ablate and "ablate" in wmf.__all__
    with pytest.raises(AttributeError, match="no attribute 'ablation_table'"):
        wmf.ablation_table  # noqa: B018


@pytest.mark.slow  # three tiny HR fits
def test_a_user_config_is_the_start_of_every_row(monkeypatch, tmp_path):
    steps = []
    fit = Generator.fit

    def spy(self, zoo_, config=None, progress=True, **overrides):
        steps.append((config.optim.steps, config.seed))
        return fit(self, zoo_, config, progress, **overrides)

    monkeypatch.setattr(Generator, "fit", spy)
    result = ablate("hr", ["epochs"], seeds=[3], quick=True, config={"optim": {"steps": 30}}, progress=False,
                    cache_dir=tmp_path)  # a fresh cache: every cell is fitted
    assert sorted(steps) == [(10, 3), (15, 3), (30, 3)]  # default 30, then a third and a half of it
    assert result.settings["config"] == {"optim": {"steps": 30}}
    assert result.settings["base_config"]["optim"]["steps"] == 30
    with pytest.raises(ValueError, match="HRConfig has no field"):
        ablate("hr", ["epochs"], quick=True, config={"width": 3})
