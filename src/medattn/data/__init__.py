"""Datasets: the ImageSet representation, spec strings and loaders (exports load on first use)."""

from medattn.lazy import lazy_exports

_HOMES = {"ImageSet": "medattn.data.imageset", "DataSpec": "medattn.data.dataset_spec",
          "LoadContext": "medattn.data.dataset_spec", "load_dataset": "medattn.data.dataset_spec",
          "parse_spec": "medattn.data.dataset_spec"}
__all__ = list(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
