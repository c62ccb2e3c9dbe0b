"""Weight generators (issue 7) and the pieces they share.

- ``Generator`` (``base``): ``fit(zoo, config, progress)``, ``sample(n, seed, **conditioning)``, ``save`` /
  ``load``; ``Config`` (``config``) is the base of each method's frozen hyperparameter dataclass.
- ``register`` / ``get`` / ``available`` (``registry``): generators by name ("hr", "gpt", "hyperdiffusion",
  "pdiff" once their modules exist; each module registers its class and is imported below).
- ``GaussianDiffusion`` (``diffusion``): q_sample, x0/eps training loss, DDPM ancestral and DDIM sampling.
- ``EMA`` (``ema``), ``sinusoidal_embedding`` / ``frequency_embedding`` (``embeddings``), ``Tokenizer``
  (``tokenize``: per tensor, chunks within tensors, per neuron), ``Standardizer`` / ``ScalarNormalizer``
  (``normalize``).
- ``Optim``, ``train_loop``, ``epoch_batches``, ``seeded`` (``training``): AdamW with warm-up and cosine decay,
  gradient clipping, EMA updates and a tqdm bar with the loss.
"""
from ..layout import layer_groups
from .base import Generator, module_tensors, sub_tensors
from .config import Config
from .diffusion import GaussianDiffusion
from .ema import EMA
from .embeddings import frequency_embedding, sinusoidal_embedding
from .normalize import ScalarNormalizer, Standardizer
from .registry import available, get, register
from .tokenize import Tokenizer
from .training import Optim, epoch_batches, seeded, train_loop
from . import hr  # noqa: F401,E402  registers "hr"
from . import gpt  # noqa: F401,E402  registers "gpt"
from . import pdiff  # noqa: F401,E402  registers "pdiff"
from . import hyperdiffusion  # noqa: F401,E402  registers "hyperdiffusion"

__all__ = ["Config", "EMA", "GaussianDiffusion", "Generator", "Optim", "ScalarNormalizer", "Standardizer",
           "Tokenizer", "available", "epoch_batches", "frequency_embedding", "get", "layer_groups", "module_tensors",
           "register", "seeded", "sinusoidal_embedding", "sub_tensors", "train_loop"]
