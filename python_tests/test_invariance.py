"""The study's invariance analysis (issue 9, study_spec §2.9, §3.4): ``reconstruction_invariance`` scores 0 for an
invariant reconstruct and more for non-invariant ones, its numbers match a hand computation, it is reproducible
from its seed, skips scaling where it would change the function, renders every row, and rejects bad input."""
from __future__ import annotations

import json

import pytest
import torch

from weightmem_fast import evaluate, zoo
from weightmem_fast.generators.hr import HyperRepresentations
from weightmem_fast.layout import ParamLayout
from weightmem_fast.symmetry import InvarianceTable, reconstruction_invariance
from weightmem_fast.symmetry.invariance import REFERENCE_ROW, TRANSFORMS

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# HR's TINY test config (test_generator_hr.py) with 60 steps (about 0.5 s here). At this size reconstructions are
# near chance and nearly constant, so the rows differ by a sample or two (measured: 0 to 0.2 % and 0 to 0.15 over
# seeds 0, 1 and 30 to 200 steps): the test checks the integration, not the size of the effect.
HR_TINY = {"d_model": 16, "heads": 2, "layers": 1, "d_ff": 32, "latent_dim": 8, "projection_dim": 4,
           "permutations": 4, "batch_size": 4, "optim": {"steps": 60, "warmup_steps": 0}}
# evaluate's accuracies are float32 (k / S rounded to 2^-24 relative); the hand computation uses float64.
ACC_RTOL = 1e-6


@pytest.fixture(scope="module")
def case(one_torch_thread) -> dict:
    """Four digits CNNs trained one epoch (accuracies about 0.05 to 0.6: different functions), as the keyword
    arguments of ``reconstruction_invariance`` after ``reconstruct``."""
    data = zoo.digits()
    trained = zoo.train_zoo("cnn", data, 4, 1, lr=0.03, progress=False)
    return {"weights": trained.weights, "layout": trained.layout, "template": zoo.model_from_zoo(trained, 0),
            "inputs": data.test_x, "labels": data.test_y, "zoo": trained}


def run(reconstruct, case: dict, **kwargs) -> InvarianceTable:
    arguments = {k: v for k, v in case.items() if k != "zoo"}
    return reconstruction_invariance(reconstruct, **arguments, **kwargs)


def fixed_noise(width: int) -> torch.Tensor:
    return torch.randn(width, generator=torch.Generator().manual_seed(1))


def additive(case: dict):
    """w + fixed noise of half the mean |w|: neither permutation- nor scale-invariant."""
    noise = 0.5 * float(case["weights"].abs().mean()) * fixed_noise(case["weights"].shape[1])
    return lambda w: w + noise


def error_sets(case: dict, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy [N] float64, bool error masks [N, S]) computed directly from predictions."""
    predictions = evaluate(case["template"], weights, case["inputs"], case["labels"], layout=case["layout"]).predictions
    wrong = predictions != case["labels"]
    return 1.0 - wrong.double().mean(dim=1), wrong


def paired_numbers(case: dict, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """The two table numbers between models a_n and b_n, by hand (IoU 0 when both error sets are empty)."""
    (acc_a, err_a), (acc_b, err_b) = error_sets(case, a), error_sets(case, b)
    inter, union = (err_a & err_b).sum(dim=1).double(), (err_a | err_b).sum(dim=1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
    return float((acc_a - acc_b).abs().mean()) * 100, 1 - float(iou.mean())


def test_invariance_identity_reconstruct_scores_zero_for_every_transform(case):
    table = run(lambda w: w, case)
    assert list(table.rows) == [REFERENCE_ROW, *TRANSFORMS] and table.skipped == {}
    for name in TRANSFORMS:
        assert table.rows[name] == {"acc_diff_pct": 0.0, "one_minus_similarity": 0.0, "models": 4,
                                    "changed_predictions": 0}
    reference = table.rows[REFERENCE_ROW]
    assert reference["acc_diff_pct"] > 1 and reference["one_minus_similarity"] > 0.1
    assert reference["changed_predictions"] is None


def test_invariance_non_invariant_reconstruct_scores_above_zero(case):
    table = run(additive(case), case)
    for name in TRANSFORMS:
        assert table.rows[name]["acc_diff_pct"] > 0 and table.rows[name]["one_minus_similarity"] > 0
        assert table.rows[name]["changed_predictions"] == 0  # T itself still preserves the function


def test_invariance_tells_transforms_apart(case):
    # Elementwise multiplicative noise commutes with per-unit scaling (rec(scale(w)) = scale(rec(w)), the same
    # function) but not with permutation (the noise stays put while the weights move).
    noise = fixed_noise(case["weights"].shape[1])
    table = run(lambda w: w * (1 + 0.3 * noise), case)
    assert table.rows["scaled"]["acc_diff_pct"] == 0 and table.rows["scaled"]["one_minus_similarity"] == 0
    assert table.rows["permuted"]["one_minus_similarity"] > 0


def test_invariance_transform_rows_match_hand_computation(case):
    seen: list[torch.Tensor] = []
    shift = additive(case)

    def recording(w: torch.Tensor) -> torch.Tensor:
        seen.append(w.clone())
        return shift(w)

    table = run(recording, case)
    original, permuted, scaled = seen
    assert torch.equal(original, case["weights"])
    for name, moved in (("permuted", permuted), ("scaled", scaled)):
        assert not torch.allclose(moved, original)  # really transformed ...
        assert torch.equal(error_sets(case, moved)[1], error_sets(case, original)[1])  # ... preserving the function
        acc_diff, dissimilarity = paired_numbers(case, shift(original), shift(moved))
        assert table.rows[name]["acc_diff_pct"] == pytest.approx(acc_diff, rel=ACC_RTOL, abs=1e-9)
        assert table.rows[name]["one_minus_similarity"] == pytest.approx(dissimilarity, rel=1e-6)


def test_invariance_reference_row_pairs_different_models(case):
    # With two models every pairing that never pairs a model with itself is (0, 1), (1, 0).
    two = dict(case, weights=case["weights"][:2])
    table = run(lambda w: w, two, transforms=())
    acc_diff, dissimilarity = paired_numbers(case, two["weights"], two["weights"].flip(0))
    assert list(table.rows) == [REFERENCE_ROW]
    assert table.rows[REFERENCE_ROW]["acc_diff_pct"] == pytest.approx(acc_diff, rel=ACC_RTOL)
    assert table.rows[REFERENCE_ROW]["one_minus_similarity"] == pytest.approx(dissimilarity, rel=1e-6)


def test_invariance_runs_on_the_hr_autoencoder(case):
    hr = HyperRepresentations().fit(case["zoo"], "demo", progress=False, **HR_TINY)
    table = run(hr.reconstruct, case)
    assert list(table.rows) == [REFERENCE_ROW, *TRANSFORMS]
    for row in table.rows.values():
        assert 0 <= row["acc_diff_pct"] <= 100 and 0 <= row["one_minus_similarity"] <= 1 and row["models"] == 4
    assert table.rows["permuted"]["changed_predictions"] == table.rows["scaled"]["changed_predictions"] == 0


def test_invariance_is_reproducible_from_its_seed(case):
    reconstruct = additive(case)
    first, again, other = (run(reconstruct, case, seed=s).to_dict() for s in (0, 0, 1))
    assert first == again
    assert first["rows"]["permuted"] != other["rows"]["permuted"]
    # Each transform has its own random stream: asking for one alone gives the same row.
    assert run(reconstruct, case, transforms=("scaled",)).rows["scaled"] == first["rows"]["scaled"]


def test_invariance_skips_scaling_through_tanh():
    template = zoo.cnn(1, 8, activation="tanh")
    layout = ParamLayout.from_module(template)
    weights = torch.cat([layout.flatten(zoo.cnn(1, 8, activation="tanh").state_dict()) for _ in range(3)])
    data = zoo.digits()
    table = reconstruction_invariance(lambda w: w, weights, layout, template, data.test_x, data.test_y)
    assert list(table.rows) == [REFERENCE_ROW, "permuted"]
    assert "Tanh" in table.skipped["scaled"] and "homogeneous" in table.skipped["scaled"]


def test_invariance_table_to_dict_and_html_hold_every_row(case):
    table = run(lambda w: w, case)
    as_dict = json.loads(json.dumps(table.to_dict()))
    assert set(as_dict["rows"]) == {REFERENCE_ROW, *TRANSFORMS} and as_dict["seed"] == 0
    page = table.to_html()
    assert page.startswith("<section") and page.endswith("</section>")
    for name in table.rows:
        assert f"<td>{name}</td>" in page
    hostile = InvarianceTable({"<script>": dict(table.rows["permuted"])}, {"scaled": "a <b> & c"})
    page = hostile.to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &lt;b&gt; &amp; c" in page


@pytest.mark.parametrize("reconstruct, kwargs, exc, fragment", [
    (lambda w: w, {"transforms": ("rotated",)}, ValueError, "unknown name"),
    (lambda w: w, {"transforms": "permuted"}, TypeError, "sequence of names"),
    (lambda w: w, {"transforms": ("permuted", "permuted")}, ValueError, "repeat"),
    (lambda w: w, {"seed": 0.5}, TypeError, "seed must be an int"),
    (lambda w: w, {"scale_range": (2.0, 0.5)}, ValueError, "low must be <= high"),
    (lambda w: w[:, :-1], {}, ValueError, r"reconstruct must return \[B, D\]"),
    (lambda w: w.long(), {}, TypeError, "floating tensor"),
    ("not callable", {}, TypeError, "reconstruct must be a callable"),
])
def test_invariance_rejects_bad_input(case, reconstruct, kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        run(reconstruct, case, **kwargs)


def test_invariance_needs_two_models(case):
    with pytest.raises(ValueError, match="at least 2 models"):
        run(lambda w: w, dict(case, weights=case["weights"][:1]))
