"""Datasets: the ImageSet representation, spec strings and loaders.

The names below load on first use (PEP 562), so that `medattn --help` and the CLI's argument errors do not
pay for importing torch.
"""

from importlib import import_module

_HOMES = {"ImageSet": "medattn.data.imageset", "DataSpec": "medattn.data.dataset_spec",
          "LoadContext": "medattn.data.dataset_spec", "load_dataset": "medattn.data.dataset_spec",
          "parse_spec": "medattn.data.dataset_spec"}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """Return an exported name, importing its module on first use."""
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'medattn.data' has no attribute {name!r}")
