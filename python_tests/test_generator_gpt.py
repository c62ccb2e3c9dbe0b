"""G.pt (issue 7, study_spec §4): trajectory pairs, the denoiser's global residual, the
common Generator interface, and (slow) the demo config's samples on digits."""
from __future__ import annotations

import pytest
import torch

from weightmem_fast import evaluate, zoo
from weightmem_fast.generators import Tokenizer, get
from weightmem_fast.generators.gpt import Gpt, GptConfig, demo_zoo
from weightmem_fast.generators.gpt_denoiser import GptDenoiser
from weightmem_fast.generators.gpt_pairs import Trajectories
from weightmem_fast.io import Zoo

# A G.pt small enough to fit in well under a second: 20 diffusion steps, one 16-wide block, 5 optimiser steps.
TINY = GptConfig().replace(width=16, depth=1, heads=2, num_frequencies=8, diffusion_steps=20, held_out_runs=2,
                           batch_size=16, optim={"steps": 5, "warmup_steps": 1})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return zoo.digits()


@pytest.fixture(scope="module")
def tiny_zoo(digits) -> Zoo:
    # 5 runs of the 64 -> 10 -> 10 MLP (D = 760), 3 checkpoints each (init, mid-epoch, end of epoch).
    return zoo.trajectories("mlp", digits, n_runs=5, epochs=1, checkpoints_per_epoch=2, progress=False)


@pytest.fixture(scope="module")
def tiny_gpt(tiny_zoo) -> Gpt:
    return Gpt().fit(tiny_zoo, TINY, progress=False)


def scores(digits, zoo_: Zoo, weights: torch.Tensor):
    return evaluate(zoo.model_from_zoo(zoo_, 0), weights, digits.test_x.flatten(1), digits.test_y,
                    layout=zoo_.layout)


# ----------------------------------------------------------------------------------------------------------------
# Training data
# ----------------------------------------------------------------------------------------------------------------

def test_trajectories_hold_out_the_last_runs_and_pair_forward_in_time(tiny_zoo):
    data = Trajectories.split(tiny_zoo, held_out_runs=2)
    runs = torch.tensor([m["run"] for m in tiny_zoo.metadata])
    steps = torch.tensor([m["step"] for m in tiny_zoo.metadata])
    assert torch.equal(data.prompt_weights, tiny_zoo.weights[(runs >= 3) & (steps == 0)])
    assert torch.equal(data.weights, tiny_zoo.weights[runs < 3])
    i, j = data.pairs(500, generator=torch.Generator().manual_seed(0))
    train_runs, train_steps = runs[runs < 3], steps[runs < 3]
    assert torch.equal(train_runs[i], train_runs[j])
    assert (train_steps[j] > train_steps[i]).all()
    assert set((train_steps[j] - train_steps[i]).tolist()) == {10, 20}  # every spacing occurs


def test_trajectories_reject_zoos_without_runs(tiny_zoo):
    plain = Zoo(tiny_zoo.weights, tiny_zoo.layout)
    with pytest.raises(ValueError, match="zoo.trajectories"):
        Trajectories.split(plain, held_out_runs=1)
    with pytest.raises(ValueError, match="held_out_runs"):
        Trajectories.split(tiny_zoo, held_out_runs=5)


# ----------------------------------------------------------------------------------------------------------------
# Denoiser
# ----------------------------------------------------------------------------------------------------------------

def test_untrained_denoiser_returns_the_starting_parameters(tiny_zoo):
    tokenizer = Tokenizer.per_tensor(tiny_zoo.layout, 100)
    net = GptDenoiser(tokenizer, width=16, depth=2, heads=2)
    x_t, start = torch.randn(4, 760), torch.randn(4, 760)
    out = net(x_t, torch.tensor([0, 5, 500, 999]), start, torch.zeros(4), torch.full((4,), 2.3))
    assert torch.equal(out, start)  # zero-initialised heads: the global residual alone
    assert tokenizer.num_tokens == 10  # 0.weight: 7 chunks (6 x 100 + 40); 0.bias, 2.weight, 2.bias: one each


def test_denoiser_uses_every_input(tiny_zoo):
    net = GptDenoiser(Tokenizer.per_tensor(tiny_zoo.layout, 100), width=16, depth=1, heads=2)
    torch.nn.init.normal_(net.out.weight)
    args = [torch.randn(2, 760), torch.tensor([3, 3]), torch.randn(2, 760), torch.zeros(2), torch.ones(2)]
    base = net(*args)
    for k, changed in enumerate([torch.randn(2, 760), torch.tensor([4, 4]), torch.randn(2, 760),
                                 torch.full((2,), 0.5), torch.full((2,), 2.0)]):
        assert not torch.allclose(net(*args[:k], changed, *args[k + 1:]), base), f"input {k} is ignored"


# ----------------------------------------------------------------------------------------------------------------
# Generator interface
# ----------------------------------------------------------------------------------------------------------------

def test_registered_with_demo_and_paper_configs():
    assert get("gpt") is Gpt
    paper = Gpt.configs["paper"]
    assert (paper.width, paper.depth, paper.heads, paper.max_token_size, paper.scale) == (1536, 12, 16, 1000, 4.185)
    assert paper.variance == "large" and paper.target_loss == 0.0


def test_follows_the_generator_contract(tiny_zoo, check_generator_contract):
    # The refit runs here, not against the module fixture only: that may have been built with another thread count.
    first = Gpt().fit(tiny_zoo, TINY, progress=False)
    check_generator_contract(first, tiny_zoo.layout, lambda: Gpt().fit(tiny_zoo, TINY, progress=False))


def test_prompts_are_the_held_out_initial_checkpoints(tiny_gpt, tiny_zoo):
    steps = torch.tensor([m["step"] for m in tiny_zoo.metadata])
    assert torch.equal(tiny_gpt.prompts, tiny_zoo.weights[steps == 0][-2:])
    # Without start, row 0 starts from the first held-out initialisation with its measured loss.
    one = tiny_gpt.sample(1, seed=0)
    explicit = tiny_gpt.sample(1, seed=0, start=tiny_gpt.prompts[:1], start_loss=tiny_gpt.prompt_losses[0])
    assert torch.equal(one, explicit)


def test_explicit_start_and_target(tiny_gpt):
    start = torch.zeros(1, 760)
    out = tiny_gpt.sample(2, seed=0, start=start, start_loss=2.3, target_loss=torch.tensor([0.1, 0.5]))
    assert out.shape == (2, 760)
    with pytest.raises(ValueError, match="start_loss is required"):
        tiny_gpt.sample(2, seed=0, start=start)
    with pytest.raises(ValueError, match=r"start must be raw weights \[n, 760\]"):
        tiny_gpt.sample(2, seed=0, start=torch.zeros(3, 760), start_loss=2.3)
    with pytest.raises(ValueError, match="target_loss must be"):
        tiny_gpt.sample(2, seed=0, target_loss=torch.zeros(3))


# ----------------------------------------------------------------------------------------------------------------
# Demo size
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(digits):
    """The demo G.pt, 32 samples prompted with loss 0, and the scores of samples and held-out starts."""
    training = demo_zoo()
    gpt = Gpt().fit(training, "demo", progress=False)
    samples = gpt.sample(32, seed=0)
    return gpt, scores(digits, training, samples), scores(digits, training, gpt.prompts)


@pytest.mark.slow
def test_demo_samples_beat_chance_and_follow_the_loss_prompt(demo, digits):
    gpt, generated, starts = demo
    # Measured 0.45 (config seed 1: 0.38; chance 0.10; the held-out initialisations score 0.10, the training runs'
    # finals 0.92).
    assert generated.accuracy.mean() > 0.3
    assert generated.accuracy.mean() > starts.accuracy.mean() + 0.2
    # Prompting each start's own loss (no improvement asked; 16 held-out starts, cycled) keeps the samples near
    # chance: measured 0.11, test loss 2.33.
    unprompted = scores(digits, demo_zoo(), gpt.sample(32, seed=0, target_loss=gpt.prompt_losses.repeat(2)))
    assert generated.accuracy.mean() > unprompted.accuracy.mean() + 0.2


@pytest.mark.slow
def test_demo_samples_have_lower_loss_than_their_starting_checkpoints(demo):
    # Issue 7: a G.pt prompted with low loss (0.0) yields lower test loss than its starting checkpoints. Measured
    # mean test loss 1.85 vs the starts' 2.33 (config seed 1: 2.03).
    _, generated, starts = demo
    assert generated.loss.mean() < starts.loss.mean() - 0.1


def test_gpt_regularisers_of_the_ablation(tiny_zoo, check_regularisers):
    from weightmem_fast.generators import gpt

    tokenizer = Tokenizer.per_tensor(tiny_zoo.layout, 100)
    x = torch.randn(3, tiny_zoo.layout.size)

    def denoiser(p):
        net = GptDenoiser(tokenizer, width=16, depth=2, heads=2, dropout=p)
        torch.nn.init.normal_(net.out.weight)  # the zeroed decoders would hide the dropout
        return net, (x, torch.tensor([1, 5, 9]), x, torch.zeros(3), torch.ones(3))

    # The normalised training weights have unit std, so weight_noise 0.3 is noise of std 0.3 on both rows of a pair.
    check_regularisers(gpt, lambda: Gpt().fit(tiny_zoo, TINY.replace(weight_noise=0.3, permute=False),
                                              progress=False), 0.3, denoiser)
    for bad in ({"dropout": 1.0}, {"dropout": -0.1}, {"weight_noise": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TINY.replace(**bad)
