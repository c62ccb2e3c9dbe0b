"""Model zoos on real data (issue 5): data sets that ship with packages, the study's architectures, and batched
zoo training."""
from .architectures import ACTIVATIONS, mlp
from .data import Dataset, digits
from .readers import cifar10, mnist
from .train import train_mlp_zoo

__all__ = ["ACTIVATIONS", "Dataset", "cifar10", "digits", "mlp", "mnist", "train_mlp_zoo"]
