"""Initialisation of a built model: `scratch`, `file:PATH` (a timm/torchvision state dict), `ssl:RUN_DIR`.

Transfer learning as in Piater et al. (ImageNet-initialised ResNet-18 / EfficientNet-B0, with and without
self-attention) and MedMNIST+ (Doerrich et al. 2024): the backbone's weights come from a checkpoint, while the
modules medattn inserts (attention) and the classifier head start fresh. `ssl:RUN_DIR` reads the encoder that
`medattn pretrain` wrote (SimCLR, Chen et al. 2020; MICLe, Azizi et al. 2021).

Key mapping: the checkpoint's keys are matched by name onto the model after stripping a wrapper prefix
(`module.`, `model.`, `backbone.`, `encoder.`). timm and torchvision ResNets share their key names; torchvision's
EfficientNet/ConvNeXt use other names and are refused as a mismatched backbone (convert them with timm first).
Every key of the plain backbone except the head must be present with the same shape, else the backbone does not
match and a one-line ModelError names the first offending key. The one tolerated shape difference is the first
convolution of a 1-channel model given a 3-channel checkpoint: its weight is summed over the RGB axis, so a grey
image x gives the response the RGB network gives to (x, x, x) (timm's `adapt_input_conv` does the same for
in_chans=1). Checkpoint keys the model lacks (e.g. timm EfficientNet's built-in SE, which medattn's plain
EfficientNet drops, or a convolution that self-attention replaces) are reported as unexpected and ignored.

`.pth` files are read with `torch.load(weights_only=True)`, PyTorch's restricted unpickler that builds tensors
and containers only, never arbitrary objects; `.safetensors` involves no pickle at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from medattn.errors import ModelError

logger = logging.getLogger(__name__)
SSL_ENCODER = "encoder.safetensors"  # what `medattn pretrain` writes in its run directory
SSL_RECORD = "pretrain.json"  # beside it: backbone, stem, channels, image size, method, provenance
_PREFIXES = ("module.", "model.", "backbone.", "encoder.")
INIT_HELP = "use scratch, file:PATH (.pth/.safetensors state dict) or ssl:RUN_DIR (a `medattn pretrain` output)"


@dataclass
class InitReport:
    """What an initialisation did: source, file hash, and the loaded / new / unexpected keys."""

    init: str
    path: str | None = None
    sha256: str | None = None
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # first conv summed over RGB for a 1-channel model

    def record(self) -> dict:
        """The JSON stored in model.json: counts and the new/unexpected/adapted names (loaded ones counted)."""
        out = asdict(self)
        out["loaded"] = len(self.loaded)
        return out

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (f"init {self.init}: {len(self.loaded)} tensors loaded, {len(self.new)} new "
                f"({_short(self.new)}), {len(self.unexpected)} unexpected ({_short(self.unexpected)})"
                + (f", adapted to 1 channel: {', '.join(self.adapted)}" if self.adapted else ""))


def _short(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") if keys else "none"


def parse_init(init: str) -> tuple[str, str | None]:
    """Split `scratch | file:PATH | ssl:RUN_DIR` into (kind, target); ModelError for anything else."""
    if init == "scratch":
        return "scratch", None
    kind, sep, target = init.partition(":")
    if not sep or kind not in ("file", "ssl") or not target:
        raise ModelError(f"init '{init}' is not understood; {INIT_HELP}")
    return kind, target


def checkpoint_path(init: str) -> Path | None:
    """The weights file an init string names (None for scratch); ModelError when it is missing."""
    kind, target = parse_init(init)
    if kind == "scratch":
        return None
    path = Path(target).expanduser()
    if kind == "ssl":
        path = path / SSL_ENCODER
        if not path.is_file():
            raise ModelError(f"init '{init}': {path} not found; run `medattn pretrain` with --out {target} first")
        return path
    if not path.is_file():
        raise ModelError(f"init '{init}': file {path} not found; give the path of a .pth or .safetensors file")
    if path.suffix not in (".pth", ".pt", ".bin", ".safetensors"):
        raise ModelError(f"init '{init}': {path.name} is not a .pth/.pt/.safetensors state dict; convert it")
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors or .pth file (nested `state_dict`/`model` unwrapped, prefixes stripped)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling refusal is a user file problem
            raise ModelError(f"{path}: not a plain state dict readable without unpickling code ({exc}); "
                             f"save it with torch.save(model.state_dict(), ...) or as .safetensors") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: expected a mapping of names to tensors (a state dict)")
    return {_strip(k): v for k, v in state.items()}


def _strip(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def head_prefix(model: nn.Module) -> str:
    """The classifier's module name (timm's pretrained_cfg['classifier']: fc, classifier, head.fc, head)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("classifier", "fc")


def first_conv(model: nn.Module) -> str:
    """The first convolution's module name (timm's pretrained_cfg['first_conv'])."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return cfg.get("first_conv", "conv1")


def _under(key: str, prefix: str) -> bool:
    return key == prefix or key.startswith(prefix + ".")


def apply_init(model: nn.Module, init: str, plain: Callable[[], nn.Module] | None = None) -> InitReport:
    """Load the weights `init` names into `model` (in place); return what was loaded, new and unexpected.

    Args:
        model: a model from `build_model` (attention already inserted).
        init: ``scratch``, ``file:PATH`` or ``ssl:RUN_DIR``.
        plain: builds the same backbone without attention; its keys are the ones the checkpoint must supply
            (all but the head). None: every model key except the head must be supplied.
    """
    path = checkpoint_path(init)
    report = InitReport(init)
    if path is None:
        return report
    report.path, report.sha256 = str(path), sha256(path)
    source = read_state_dict(path)
    target = model.state_dict()
    head, conv = head_prefix(model), first_conv(model) + ".weight"
    required = set((plain() if plain is not None else model).state_dict())
    merged: dict[str, torch.Tensor] = {}
    for key, value in target.items():
        fresh = _under(key, head) or key not in required  # the head and inserted attention start fresh
        if fresh or key not in source:
            if not fresh and not key.endswith("num_batches_tracked"):
                raise ModelError(f"init '{init}': the checkpoint lacks backbone weight '{key}' of "
                                 f"{_backbone(model)}; it was saved from another backbone ({_guess(source)}); "
                                 f"give a checkpoint of the same architecture")
            report.new.append(key)
            continue
        weight = source[key]
        if weight.shape != value.shape:
            weight = _adapt(key, weight, value, conv, init, model, report)
        merged[key] = weight.to(value.dtype)
        report.loaded.append(key)
    report.unexpected = [k for k in source if k not in merged]
    _refuse_extra_blocks(report.unexpected, model, init)
    model.load_state_dict({**target, **merged})
    logger.info(report.summary())
    return report


def _adapt(key: str, weight: torch.Tensor, value: torch.Tensor, conv: str, init: str, model: nn.Module,
           report: InitReport) -> torch.Tensor:
    """The 3 -> 1 channel first-conv adaptation (sum over RGB); ModelError for any other shape difference."""
    if key == conv and weight.ndim == 4 and weight.shape[1] == 3 and value.shape[1] == 1 \
            and weight.shape[0] == value.shape[0] and weight.shape[2:] == value.shape[2:]:
        report.adapted.append(key)
        return weight.sum(dim=1, keepdim=True)
    hint = ""
    if key == conv and weight.shape[2:] != value.shape[2:]:
        hint = " (the small-image stem replaced the first convolution; use stem: s2 or standard, which keep it)"
    raise ModelError(f"init '{init}': '{key}' has shape {tuple(weight.shape)} in the checkpoint but "
                     f"{tuple(value.shape)} in {_backbone(model)}{hint}; give a checkpoint of the same architecture")


def _refuse_extra_blocks(unexpected: list[str], model: nn.Module, init: str) -> None:
    """ModelError when the checkpoint has a block the model lacks (e.g. ResNet-34 weights for a ResNet-18, whose
    shared blocks have the same shapes): an unexpected key whose first missing module is a numbered child."""
    names = {name for name, _ in model.named_modules()}
    for key in unexpected:
        parts = key.split(".")[:-1]
        depth = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in names), 0)
        if depth < len(parts) and parts[depth].isdigit() and depth > 0:
            raise ModelError(f"init '{init}': the checkpoint has block '{'.'.join(parts[:depth + 1])}', which "
                             f"{_backbone(model)} lacks; it was saved from a deeper backbone; give a checkpoint of "
                             f"the same architecture")


def _backbone(model: nn.Module) -> str:
    spec = getattr(model, "medattn_spec", None) or {}
    return spec.get("backbone") or type(model).__name__


def _guess(source: dict[str, torch.Tensor]) -> str:
    return f"{len(source)} tensors, first '{next(iter(source), '')}'"


def ssl_record(run_dir: str | Path) -> dict:
    """The pretrain.json of an ssl: run directory ({} when absent)."""
    path = Path(run_dir).expanduser() / SSL_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}
