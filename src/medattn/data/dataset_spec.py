"""Dataset spec strings (`kind:target?key=value&...`) and the loader registry they dispatch to."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from medattn.data.imageset import ImageSet
from medattn.errors import DataError


@dataclass(frozen=True)
class DataSpec:
    """A parsed dataset spec: loader kind, its target (flag, path or generator name) and options."""

    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}:{self.target}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class LoadContext:
    """Where loaders look for data and put caches, and whether they may download."""

    data_dir: Path | None = None
    cache_dir: Path | None = None
    allow_download: bool = False

    @staticmethod
    def from_env(data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 allow_download: bool = False) -> LoadContext:
        """A context from explicit arguments, falling back to MEDATTN_DATA / MEDATTN_CACHE."""
        data_dir = data_dir or os.environ.get("MEDATTN_DATA")
        cache_dir = cache_dir or os.environ.get("MEDATTN_CACHE") or Path.home() / ".cache" / "medattn"
        return LoadContext(Path(data_dir) if data_dir else None, Path(cache_dir), allow_download)


def load_context(study: dict) -> LoadContext:
    """The data and cache folders a study used (``data_dir``, ``cache_dir`` of its study.json), falling back to
    MEDATTN_DATA / MEDATTN_CACHE."""
    return LoadContext.from_env(study.get("data_dir"), study.get("cache_dir"))


Loader = Callable[[DataSpec, LoadContext], ImageSet]
_LOADERS: dict[str, Loader] = {}


def register_loader(kind: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader for specs of the form `kind:...`."""

    def wrap(fn: Loader) -> Loader:
        _LOADERS[kind] = fn
        return fn

    return wrap


def parse_spec(text: str) -> DataSpec:
    """Parse `kind:target?k=v&k=v` into a DataSpec, or raise DataError naming the problem."""
    if ":" not in text:
        raise DataError(f"dataset spec '{text}': expected KIND:TARGET[?key=value&...], e.g. "
                        f"'medmnist:pneumoniamnist?size=28'; kinds: {', '.join(sorted(_known()))}")
    kind, rest = text.split(":", 1)
    target, _, query = rest.partition("?")
    if kind not in _known():
        raise DataError(f"dataset spec '{text}': unknown kind '{kind}'; use one of {', '.join(sorted(_known()))}")
    if not target:
        raise DataError(f"dataset spec '{text}': nothing after '{kind}:'; name the dataset or path")
    return DataSpec(kind, target, dict(parse_qsl(query, keep_blank_values=True)))


def load_dataset(spec: str | DataSpec, ctx: LoadContext | None = None) -> ImageSet:
    """Load the ImageSet a spec string names."""
    from medattn.data.shortcut import apply_shortcut, split_shortcut  # shortcut_* options work for every loader

    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    ctx = ctx or LoadContext.from_env()
    # derm-synth plants its own shortcut and owns the shortcut_corr option; real-image loaders get pasted templates.
    base, shortcut = (parsed, None) if parsed.kind == "synthetic" else split_shortcut(parsed, ctx)
    data = _LOADERS[base.kind](base, ctx)
    return data if shortcut is None else apply_shortcut(data, shortcut)


def option(spec: DataSpec, key: str, default, cast=str, allowed: tuple | None = None):
    """One typed option of a spec, or DataError naming the option and the accepted values."""
    if key not in spec.options:
        return default
    raw = spec.options[key]
    try:
        value = cast(raw)
    except ValueError:
        raise DataError(f"dataset spec '{spec}': option {key}={raw} is not a valid {cast.__name__}") from None
    if allowed is not None and value not in allowed:
        raise DataError(f"dataset spec '{spec}': option {key}={raw} not allowed; use one of "
                        f"{', '.join(map(str, allowed))}")
    return value


def check_options(spec: DataSpec, known: set[str]) -> None:
    """Raise DataError for an option the loader does not understand."""
    unknown = sorted(set(spec.options) - known)
    if unknown:
        raise DataError(f"dataset spec '{spec}': unknown option(s) {', '.join(unknown)}; "
                        f"'{spec.kind}' accepts {', '.join(sorted(known))}")


def _known() -> set[str]:
    import medattn.data.loaders  # noqa: F401  (registers the built-in loaders)

    return set(_LOADERS)
