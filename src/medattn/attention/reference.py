"""Naive reference computations of our self-attention modules, from the modules' own weights.

They spell the arithmetic out -- the full softmax(s*QK^T + position logits) V matrix for global attention,
every k x k neighbourhood unfolded (or a Python loop over pixels) for local attention -- and exist to test
the fused implementations (`mhsa.py`, `local.py`, `augmented.py`) and to benchmark them. Not for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medattn.attention.local import LocalSelfAttention2d
from medattn.attention.mhsa import MultiHeadSelfAttention2d, PositionTables


def _heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, heads*d, H, W) -> (B, heads, H*W, d)."""
    b, c, h, w = t.shape
    return t.reshape(b, heads, c // heads, h * w).transpose(-1, -2)


def position_logits(pos: PositionTables, q: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, heads, HW, HW) position logits q_i . (r_row[i, j] + r_col[i, j]) written out in full."""
    if pos.rows is None:
        return q.new_zeros(q.shape[0], q.shape[1], height * width, height * width)
    ys, xs = torch.arange(height, device=q.device), torch.arange(width, device=q.device)
    if pos.position == "relative":
        ih = ys[None, :] - ys[:, None] + pos.feat_size[0] - 1  # (query row, key row)
        iw = xs[None, :] - xs[:, None] + pos.feat_size[1] - 1
    else:
        ih, iw = ys[None, :].expand(height, -1), xs[None, :].expand(width, -1)
    qg = q.reshape(*q.shape[:2], height, width, -1)
    rows = torch.einsum("bhyxd,ymd->bhyxm", qg, pos.rows[ih])  # key row m
    cols = torch.einsum("bhyxd,xnd->bhyxn", qg, pos.cols[iw])  # key column n
    full = rows[..., :, None] + cols[..., None, :]  # B, h, H, W, H, W
    return full.reshape(*q.shape[:2], height * width, height * width)


def naive_global(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, pos: PositionTables, scale: float,
                 scale_pos: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention with the full (B, heads, HW, HW) matrix; returns (output map, probabilities)."""
    b, _, h, w = q.shape
    qh, kh, vh = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    rel = position_logits(pos, qh, h, w)
    logits = (qh @ kh.transpose(-1, -2) + rel) * scale if scale_pos else qh @ kh.transpose(-1, -2) * scale + rel
    probs = logits.softmax(-1)
    out = (probs @ vh).transpose(-1, -2).reshape(b, -1, h, w)
    return out, probs


def naive_mhsa(module: MultiHeadSelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """The output of `module` on `x`, computed with an explicit softmax(s QK^T + rel) V matrix."""
    q, k, v = module.qkv(x).split([module.heads * module.dim_qk] * 2 + [module.heads * module.dim_v], dim=1)
    out, _ = naive_global(q, k, v, module.heads, module.pos, module.scale, module.scale_pos)
    return module.pool(out)


def _local_projections(module: LocalSelfAttention2d, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b, _, h, w = x.shape
    q = module.q(x).reshape(b, module.heads, module.dim_qk, h, w)
    kv = module.kv(x).reshape(b, module.heads, module.dim_qk + module.dim_v, h, w)
    return q, kv[:, :, : module.dim_qk], kv[:, :, module.dim_qk:]


def naive_local_loop(module: LocalSelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """SASA output of `module` by a Python loop over pixels, each attending to its in-image k x k window."""
    q, k, v = _local_projections(module, x)
    b, heads, _, h, w = q.shape
    r, s = module.radius, module.scale
    out = x.new_zeros(b, heads, module.dim_v, h, w)
    for y in range(h):
        for xx in range(w):
            y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, xx - r), min(w, xx + r + 1)
            qi = q[:, :, :, y, xx]  # B, heads, d
            keys = k[:, :, :, y0:y1, x0:x1].flatten(3)  # B, heads, d, n
            rel = (module.rel_rows[torch.arange(y0, y1) - y + r][:, None, :]
                   + module.rel_cols[torch.arange(x0, x1) - xx + r][None, :, :]).reshape(-1, module.dim_qk)
            content = torch.einsum("bhd,bhdn->bhn", qi, keys)
            position = qi @ rel.T
            logits = (content + position) * s if module.scale_pos else content * s + position
            weights = logits.softmax(-1)
            out[:, :, :, y, xx] = torch.einsum("bhn,bhdn->bhd", weights, v[:, :, :, y0:y1, x0:x1].flatten(3))
    return module.pool(out.reshape(b, heads * module.dim_v, h, w))


def naive_local_unfold(module: LocalSelfAttention2d, x: torch.Tensor) -> torch.Tensor:
    """SASA output of `module` with every k x k neighbourhood of keys and values unfolded (k*k copies)."""
    q, k, v = _local_projections(module, x)
    b, heads, dqk, h, w = q.shape
    kk, r = 2 * module.radius + 1, module.radius

    def unfold(t: torch.Tensor) -> torch.Tensor:  # (B, heads, d, H, W) -> (B, heads, HW, k*k, d)
        cols = F.unfold(t.flatten(1, 2), kk, padding=r)  # B, heads*d*k*k, HW
        return cols.view(b, heads, t.shape[2], kk * kk, h * w).permute(0, 1, 4, 3, 2)

    inside = F.unfold(x.new_ones(1, 1, h, w), kk, padding=r).view(kk * kk, h * w).T > 0  # HW, k*k
    qh = q.flatten(3).transpose(-1, -2)  # B, heads, HW, d
    rel = (module.rel_rows[:, None, :] + module.rel_cols[None, :, :]).reshape(kk * kk, dqk)
    content = torch.einsum("bhnd,bhnkd->bhnk", qh, unfold(k))
    position = qh @ rel.T
    logits = (content + position) * module.scale if module.scale_pos else content * module.scale + position
    weights = logits.masked_fill(~inside, float("-inf")).softmax(-1)
    out = torch.einsum("bhnk,bhnkd->bhnd", weights, unfold(v))
    return module.pool(out.transpose(-1, -2).reshape(b, heads * module.dim_v, h, w))
