"""Datasets: the ImageSet representation, spec strings and loaders."""

from medattn.data.imageset import ImageSet
from medattn.data.spec import DataSpec, LoadContext, load_dataset, parse_spec

__all__ = ["ImageSet", "DataSpec", "LoadContext", "load_dataset", "parse_spec"]
