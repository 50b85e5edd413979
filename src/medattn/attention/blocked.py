"""Blocked multi-head attention over 2D feature maps with factorised position logits, in one SDPA call.

Queries are grouped into bh x bw blocks and each block attends to the keys of the (bh + 2h) x (bw + 2h) window
around it (the blocking of HaloNet, Vaswani et al. 2021, https://arxiv.org/abs/2103.12731). Global attention
(BoTNet) is the special case of one block covering the map and no halo.

Position terms that depend on (query, key row) and (query, key column) only -- 2D relative logits
(Shaw et al. 2018; Bello et al. 2019, https://arxiv.org/abs/1904.09925), learned absolute row/column embeddings,
and static masks such as SASA neighbourhoods (Ramachandran et al. 2019, https://arxiv.org/abs/1906.05909) and
zero padding -- are folded into the dot product: each key gets a one-hot of its window row and column appended,
each query the matching row and column logits, so one `F.scaled_dot_product_attention` call computes
softmax(s*QK^T + L_row + L_col) V without materialising the queries x keys matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

NEG = -1.0e4  # finite mask logit: exp(NEG) underflows to 0 in fp32/bf16/fp16, and NEG * 0 == 0 (unlike -inf)


@dataclass(frozen=True)
class Axis:
    """How one spatial axis is cut: `size` positions, query blocks of `block`, windows reaching `halo` further."""

    size: int
    block: int
    halo: int

    @property
    def nblocks(self) -> int:
        """Number of query blocks (the last one is padded when `block` does not divide `size`)."""
        return math.ceil(self.size / self.block)

    @property
    def padded(self) -> int:
        """Axis length after padding to whole blocks."""
        return self.nblocks * self.block

    @property
    def window(self) -> int:
        """Key window length seen by one block."""
        return self.block + 2 * self.halo


def global_axis(size: int) -> Axis:
    """One block covering the whole axis, no halo: every query sees every key."""
    return Axis(size, size, 0)


def sasa_axis(size: int, block: int, radius: int) -> Axis:
    """Cut an axis for exact k x k neighbourhoods: one block up to 2*block, else a divisor of `size` near `block`.

    One block with no halo stores each key once; smaller blocks store overlapping windows but compare each
    query with fewer keys. Up to twice the block size the single block does about as much arithmetic.
    """
    if size <= 2 * block:
        return Axis(size, size, 0)
    divisors = [b for b in range(block, (block + 1) // 2 - 1, -1) if size % b == 0]
    return Axis(size, divisors[0] if divisors else block, radius)


@lru_cache(maxsize=256)
def _key_positions(axis: Axis, device: torch.device) -> torch.Tensor:
    """(nblocks, window) absolute position of every window slot; may lie outside [0, size)."""
    starts = torch.arange(axis.nblocks, device=device) * axis.block - axis.halo
    return starts[:, None] + torch.arange(axis.window, device=device)


@lru_cache(maxsize=256)
def _query_offsets(axis: Axis, device: torch.device) -> torch.Tensor:
    """(block, window) key position minus query position, for a query at offset y of any block."""
    slots = torch.arange(axis.window, device=device) - axis.halo
    return slots[None, :] - torch.arange(axis.block, device=device)[:, None]


@lru_cache(maxsize=256)
def relative_index(axis: Axis, max_offset: int, device: torch.device) -> torch.Tensor:
    """(block, window) row of a (2*max_offset+1)-entry relative table; offsets beyond are clamped (masked)."""
    return (_query_offsets(axis, device) + max_offset).clamp(0, 2 * max_offset)


@lru_cache(maxsize=256)
def absolute_index(axis: Axis, device: torch.device) -> torch.Tensor:
    """(block, window) row of an absolute table (one entry per key position; global attention only)."""
    return _key_positions(axis, device)[0][None, :].expand(axis.block, -1).clamp(0, axis.size - 1)


@lru_cache(maxsize=256)
def window_penalty(axis: Axis, radius: int | None, mask_padding: bool, device: torch.device) -> torch.Tensor:
    """(nblocks, block, window) additive mask: NEG where the key is padding or farther than `radius`."""
    pen = torch.zeros(axis.nblocks, axis.block, axis.window, device=device)
    if mask_padding:
        keys = _key_positions(axis, device)
        pen = pen.masked_fill(((keys < 0) | (keys >= axis.size))[:, None, :], NEG)
    if radius is not None:
        pen = pen.masked_fill((_query_offsets(axis, device).abs() > radius)[None], NEG)
    return pen


def query_blocks(x: torch.Tensor, heads: int, rows: Axis, cols: Axis) -> torch.Tensor:
    """(B, heads*d, H, W) -> view (B, heads, nbh, nbw, bh, bw, d), the map zero-padded to whole blocks."""
    b, c = x.shape[:2]
    x = _pad(x, (0, cols.padded - cols.size, 0, rows.padded - rows.size))
    x = x.reshape(b, heads, c // heads, rows.nblocks, rows.block, cols.nblocks, cols.block)
    return x.permute(0, 1, 3, 5, 4, 6, 2)


def key_windows(x: torch.Tensor, heads: int, rows: Axis, cols: Axis) -> torch.Tensor:
    """(B, heads*d, H, W) -> view (B, heads, nbh, nbw, wh, ww, d): the zero-padded key window of each block."""
    b, c = x.shape[:2]
    x = _pad(x, (cols.halo, cols.halo + cols.padded - cols.size, rows.halo, rows.halo + rows.padded - rows.size))
    x = x.unfold(2, rows.window, rows.block).unfold(3, cols.window, cols.block)  # B, C, nbh, nbw, wh, ww
    x = x.unflatten(1, (heads, c // heads))
    return x.permute(0, 1, 3, 4, 5, 6, 2)


def _pad(x: torch.Tensor, pad: tuple[int, ...]) -> torch.Tensor:
    return F.pad(x, pad) if any(pad) else x


def merge_blocks(out: torch.Tensor, rows: Axis, cols: Axis) -> torch.Tensor:
    """(B, heads, nbh, nbw, bh, bw, d) -> (B, heads*d, H, W), dropping the padded positions."""
    b, heads, d = out.shape[0], out.shape[1], out.shape[-1]
    out = out.permute(0, 1, 6, 2, 4, 3, 5).reshape(b, heads * d, rows.padded, cols.padded)
    return out[:, :, : rows.size, : cols.size]


def axis_logits(q: torch.Tensor, table: torch.Tensor, index: torch.Tensor, along_rows: bool,
                factor: float = 1.0, penalty: torch.Tensor | None = None) -> torch.Tensor:
    """factor * q . table[index[y, m]] for queries (B, h, nbh, nbw, bh, bw, d) and every window row m (or column).

    `penalty` (nblocks, block, window) is added (rows: indexed by block row; columns: by block column).
    """
    emb = table[index]  # (block, window, d)
    if along_rows:
        logits = torch.einsum("...yxd,ymd->...yxm", q, emb)
    else:
        logits = torch.einsum("...yxd,xnd->...yxn", q, emb)
    if factor != 1.0:
        logits = logits * factor
    if penalty is not None:
        nb, blk, w = penalty.shape
        logits = logits + penalty.view((nb, 1, blk, 1, w) if along_rows else (1, nb, 1, blk, w)).to(logits.dtype)
    return logits


@lru_cache(maxsize=64)
def _key_onehots(rows: int, cols: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(rows, cols, rows+cols): one-hot of each window slot's row, then of its column."""
    eye_r = torch.eye(rows, device=device, dtype=dtype)[:, None, :].expand(rows, cols, rows)
    eye_c = torch.eye(cols, device=device, dtype=dtype)[None, :, :].expand(rows, cols, cols)
    return torch.cat([eye_r, eye_c], dim=-1)


def augment(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
            logits: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold row/column logits into (q, k) and zero-pad q, k, v to one head size, so a fused kernel applies.

    Shapes (B, h, nbh, nbw, bh|wh, bw|ww, d); each result is built by one copy. On CUDA the head size is
    rounded up to a multiple of 8 (what the flash / memory-efficient kernels need).
    """
    wh, ww = k.shape[-3], k.shape[-2]
    extra = 0 if logits is None else wh + ww
    dim = max(q.shape[-1] + extra, v.shape[-1])
    if q.is_cuda:
        dim += -dim % 8
    q_parts, k_parts = [q * scale], [k]
    if logits is not None:
        q_parts += [t.to(q.dtype) for t in logits]
        k_parts.append(_key_onehots(wh, ww, k.device, k.dtype).expand(*k.shape[:-1], -1))
    return _padded_cat(q_parts, dim), _padded_cat(k_parts, dim), _padded_cat([v], dim)


def _padded_cat(parts: list[torch.Tensor], dim: int) -> torch.Tensor:
    """Concatenate along the last axis, zero-filled up to `dim`, as one contiguous copy."""
    width = sum(p.shape[-1] for p in parts)
    if width < dim:
        parts = [*parts, parts[0].new_zeros(()).expand(*parts[0].shape[:-1], dim - width)]
    return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0].contiguous()


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
           logits: tuple[torch.Tensor, torch.Tensor] | None = None,
           want_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(scale q k^T + row + column logits) v for every block; also the (B, h, nB, Q, K) probabilities.

    q (B, h, nbh, nbw, bh, bw, d), k / v (B, h, nbh, nbw, wh, ww, d|dv); output (B, h, nbh, nbw, bh, bw, dv).
    """
    dv = v.shape[-1]
    qa, ka, va = (t.flatten(4, 5).flatten(1, 3) for t in augment(q, k, v, scale, logits))  # B, h*nB, Q|K, D
    out = F.scaled_dot_product_attention(qa, ka, va, scale=1.0)[..., :dv]
    out = out.unflatten(1, q.shape[1:4]).unflatten(4, q.shape[4:6])
    probs = None
    if want_probs:
        probs = (qa @ ka.transpose(-1, -2)).float().softmax(-1).unflatten(1, (q.shape[1], -1))
    return out, probs


@lru_cache(maxsize=64)
def _dense_index(rows: Axis, cols: Axis, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (query*HW + key) target of every valid (block, query, key) entry and the mask of valid entries."""
    kr, kc = _key_positions(rows, device), _key_positions(cols, device)  # (nbh, wh), (nbw, ww)
    qr = torch.arange(rows.padded, device=device).view(rows.nblocks, rows.block)
    qc = torch.arange(cols.padded, device=device).view(cols.nblocks, cols.block)
    # broadcast to (nbh, nbw, bh, bw, wh, ww)
    qrb, qcb = qr[:, None, :, None, None, None], qc[None, :, None, :, None, None]
    krb, kcb = kr[:, None, None, None, :, None], kc[None, :, None, None, None, :]
    valid = (qrb < rows.size) & (qcb < cols.size) & (krb >= 0) & (krb < rows.size) & (kcb >= 0) & (kcb < cols.size)
    qflat = qrb * cols.size + qcb
    kflat = krb * cols.size + kcb
    target, valid = torch.broadcast_tensors(qflat * (rows.size * cols.size) + kflat, valid)
    valid = valid.reshape(-1)
    return target.reshape(-1)[valid], valid


def dense_map(probs: torch.Tensor, rows: Axis, cols: Axis) -> torch.Tensor:
    """(B, h, nB, Q, K) block probabilities -> (B, h, H*W, H*W) map over the image grid (zeros off-window)."""
    b, h = probs.shape[:2]
    n = rows.size * cols.size
    target, valid = _dense_index(rows, cols, probs.device)
    dense = probs.new_zeros(b, h, n * n)
    dense[:, :, target] = probs.reshape(b, h, -1)[:, :, valid]
    return dense.view(b, h, n, n)
