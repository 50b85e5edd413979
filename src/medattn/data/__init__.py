"""Datasets: the ImageSet representation, spec strings and loaders."""

from medattn.data.dataset_spec import DataSpec, LoadContext, load_dataset, parse_spec
from medattn.data.imageset import ImageSet

__all__ = ["ImageSet", "DataSpec", "LoadContext", "load_dataset", "parse_spec"]
