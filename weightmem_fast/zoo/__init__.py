"""Model zoos on real data (issue 5): data sets that ship with packages, the study's architectures, batched zoo
training (independent models, trajectories, P-diff's consecutive checkpoints) and a disk cache of built zoos."""
from .architectures import ACTIVATIONS, ARCHITECTURES, BasicBlock, cnn, cnn_bn, hr_padding, mlp, pdiff_subset
from .cache import cached, cache_path, default_cache_dir
from .data import Dataset, digits
from .readers import cifar10, mnist
from .models import INITS, make_model, model_from_zoo, zoo_layout
from .stacked import StackedModel
from .train import train_mlp_zoo, train_zoo
from .trajectories import consecutive_checkpoints, trajectories

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "BasicBlock", "Dataset", "INITS", "StackedModel", "cache_path", "cached",
           "cifar10", "cnn", "cnn_bn", "consecutive_checkpoints", "default_cache_dir", "digits", "hr_padding",
           "make_model", "mlp", "mnist", "model_from_zoo", "pdiff_subset", "train_mlp_zoo", "train_zoo",
           "trajectories", "zoo_layout"]
