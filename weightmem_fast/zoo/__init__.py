"""Model zoos on real data (issue 5): data sets that ship with packages, the study's architectures, and batched
zoo training."""
from .architectures import ACTIVATIONS, mlp
from .data import Dataset, digits
from .train import train_mlp_zoo

__all__ = ["ACTIVATIONS", "Dataset", "digits", "mlp", "train_mlp_zoo"]
