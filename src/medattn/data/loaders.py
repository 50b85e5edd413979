"""Built-in dataset loaders; importing this module registers them."""

from medattn.data import camelyon17, derm7pt, folder, medmnist_npz, synthetic  # noqa: F401
