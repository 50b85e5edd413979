"""An attention mechanism is one new file and one registry line: proven on a copy of the package in a temporary
folder, where the toy mechanism is then built into a backbone, trained for a step, listed and recorded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import medattn

SOURCE = Path(medattn.__file__).resolve().parent

TOY_MECHANISM = '''"""Toy gate: a learned per-channel scale squashed by a sigmoid (an SE block without the squeeze)."""

import torch
import torch.nn as nn

from medattn.attention.mechanism import Mechanism
from medattn.attention.record import Emit, gate_hook, register_extractor


class ToyGate(nn.Module):
    """Multiply every channel by sigmoid(w_c), w_c learned.

    Args:
        channels: input (and output) channels.
        init: initial value of every w_c (0 gives a gate of 0.5).
    """

    def __init__(self, channels: int, init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(init)))
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.gate(self.weight.expand(x.shape[0], -1))
        return x * g[:, :, None, None]


def toy_extractor(module: ToyGate, emit: Emit) -> list:
    """The output of `module.gate` is the (B, C) channel gate."""
    return [module.gate.register_forward_hook(gate_hook(emit, "channel"))]


register_extractor(ToyGate, "toy", toy_extractor)

MECHANISMS = [
    Mechanism(name="toy", family="channel", factory=ToyGate, placements=("after_conv", "stage_end"),
              default_placement={"stages": "all", "where": "after_conv", "blocks": "all"}, source="medattn",
              paper="none (a test fixture)", summary="learned per-channel sigmoid scale"),
]
'''

CHECK = '''
import torch
from medattn.attention import record_attention
from medattn.attention.registry import get_mechanism
from medattn.models import build_model
from medattn.models.describe import list_mechanisms

torch.set_num_threads(1)
torch.manual_seed(0)
assert get_mechanism("toy").options() == {"init": 0.0}
assert "toy" in [m["name"] for m in list_mechanisms()]
model = build_model("resnet18", "toy", num_classes=3, image_size=32, init=1.0)
gates = [m for m in model.modules() if type(m).__name__ == "ToyGate"]
assert len(gates) == 8, len(gates)  # after the conv of every basic block of the four stages
x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
loss = torch.nn.functional.cross_entropy(model(x), y)
loss.backward()
assert all(g.weight.grad is not None for g in gates)  # trainable (values may be 0: timm zero-inits last BNs)
with torch.no_grad(), record_attention(model.eval()) as maps:
    model(x)
assert len(maps) == 8 and all(m.mechanism == "toy" for m in maps)
assert all(abs(float(m.values.mean()) - torch.sigmoid(torch.tensor(1.0)).item()) < 1e-6 for m in maps)
print("toy ok")
'''


def test_new_mechanism_is_one_file_and_one_registry_line(tmp_path: Path):
    package = tmp_path / "medattn"
    shutil.copytree(SOURCE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "attention" / "toy.py").write_text(TOY_MECHANISM)
    registry = package / "attention" / "registry.py"
    before = registry.read_text().splitlines()
    anchor = '    "medattn.attention.augmented",'
    after = [*before[:before.index(anchor) + 1], '    "medattn.attention.toy",', *before[before.index(anchor) + 1:]]
    registry.write_text("\n".join(after) + "\n")
    assert len(after) == len(before) + 1

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "toy ok"
