"""Zoos on real data: the digits split and batched MLP training (issue 5)."""
from __future__ import annotations

import pytest
import torch

from weightmem_fast.zoo import digits, mlp, train_mlp_zoo


def test_digits_split_is_fixed_stratified_and_scaled():
    data = digits()
    assert data.train_x.shape[1:] == (1, 8, 8) and data.num_classes == 10
    assert data.train_x.shape[0] + data.test_x.shape[0] == 1797
    assert torch.all(data.test_y.bincount(minlength=10) >= 50)  # every class held out
    assert 0.0 <= float(data.train_x.min()) and float(data.train_x.max()) <= 1.0
    again = digits()
    assert torch.equal(again.test_x, data.test_x) and torch.equal(again.train_y, data.train_y)


@pytest.fixture(scope="module")
def small_zoo():
    return train_mlp_zoo(digits(), 12, epochs=15, chunk=5, progress=False)


@pytest.mark.slow  # trains a small zoo (a few seconds)
def test_mlp_zoo_trains_well_above_chance(small_zoo):
    accuracy = torch.tensor([m["test_accuracy"] for m in small_zoo.metadata])
    assert small_zoo.weights.shape == (12, 760)
    assert float(accuracy.mean()) >= 0.85


@pytest.mark.slow  # trains a small zoo (a few seconds)
def test_mlp_zoo_weights_are_the_recorded_models(small_zoo):
    data = digits().flat()
    for row in (0, 7):
        model = mlp(64, 10, 10)
        model.load_state_dict(small_zoo.layout.unflatten(small_zoo.weights[row])[0])
        with torch.no_grad():
            accuracy = (model(data.test_x).argmax(1) == data.test_y).float().mean()
        assert float(accuracy) == pytest.approx(small_zoo.metadata[row]["test_accuracy"], abs=1e-6)
        assert small_zoo.metadata[row]["seed"] == row


@pytest.mark.slow  # trains a small zoo (a few seconds)
def test_models_do_not_depend_on_their_chunk(small_zoo):
    # Model 6 trained alone (seed 6) matches model 6 of the zoo trained in chunks of 5.
    alone = train_mlp_zoo(digits(), 1, epochs=15, seed=6, progress=False)
    torch.testing.assert_close(alone.weights[0], small_zoo.weights[6], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,fragment", [({"n_models": 0}, "n_models must be a positive int"),
                                             ({"n_models": 2, "activation": "swish"}, "activation must be one of"),
                                             ({"n_models": 2, "epochs": 1.5}, "epochs must be a positive int")])
def test_train_mlp_zoo_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        train_mlp_zoo(digits(), progress=False, **kwargs)
