"""The attention gate equals MONAI's AttentionBlock (monai.networks.nets.attentionunet) for the same weights."""

from __future__ import annotations

import torch

from medattn.segment.gate import AttentionGate


def _monai_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MONAI names its 1x1 convolutions `W_g.0.conv`, `W_x.0.conv`, `psi.0.conv`; ours are `w_g.0`, ... ."""
    return {k.replace("W_g", "w_g").replace("W_x", "w_x").replace(".0.conv.", ".0."): v for k, v in state.items()}


def test_gate_matches_monai_attention_block_in_train_and_eval():
    from monai.networks.nets.attentionunet import AttentionBlock

    torch.manual_seed(0)
    ref = AttentionBlock(spatial_dims=2, f_int=6, f_g=12, f_l=10)
    with torch.no_grad():  # random affine and running statistics, so that no BN is the identity
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0)
    ours = AttentionGate(g_channels=12, x_channels=10, inter_channels=6)
    ours.load_state_dict(_monai_to_ours(ref.state_dict()), strict=True)
    g, x = torch.randn(3, 12, 9, 7), torch.randn(3, 10, 9, 7)
    for mode in ("eval", "train"):
        getattr(ref, mode)(), getattr(ours, mode)()
        torch.testing.assert_close(ours(g, x), ref(g=g, x=x), rtol=1e-5, atol=1e-6)


def test_gate_map_is_one_channel_in_unit_interval_and_scales_the_skip():
    gate = AttentionGate(8, 8).eval()
    gate.record = True
    x = torch.randn(2, 8, 5, 5)
    out = gate(torch.randn(2, 8, 5, 5), x)
    psi = gate.last_map
    assert psi.shape == (2, 1, 5, 5) and float(psi.min()) >= 0 and float(psi.max()) <= 1
    torch.testing.assert_close(out, x * psi)
