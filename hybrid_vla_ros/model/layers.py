"""Transformer building blocks written with plain matmul/softmax so that they export to
ONNX (opset >= 17) and TensorRT without custom ops, and run identically in both.

Shapes: tokens are (B, S, D) float32; masks are additive float biases broadcastable to
(B, heads, S_query, S_key), 0 where attention is allowed and a large negative value where
it is not.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Large enough to zero a softmax entry, small enough that two of them still fit in float16
# (exported fp16 graphs): -3e4 + -3e4 > -65504.
NEG_INF = -3.0e4


class Dropout(nn.Module):
    """Inverted dropout of rate `p` (0 <= p < 1) on any float tensor; identity in eval mode.

    Same semantics as `nn.Dropout`, but on CPU the keep mask comes from 15-bit random
    integers, four per int64 draw of torch's global generator, instead of `bernoulli_`:
    PyTorch's CPU Bernoulli sampling is single-threaded and took 17 % of a training step of
    the default model (2 threads); this mask costs about a third as much. The rate is
    rounded to a multiple of 1/32768 and the kept values are scaled by the exact inverse
    keep probability. On other devices it is `nn.functional.dropout`.
    """

    _LEVELS = 1 << 15

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f'dropout rate {p} is outside [0, 1)')
        self.p = p
        self._threshold = int(round(p * self._LEVELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (any shape) float -> same shape."""
        if not self.training or self._threshold == 0:
            return x
        if x.device.type != 'cpu':
            return nn.functional.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64).random_()
        lanes = words.view(torch.int16)[:n] & (self._LEVELS - 1)
        scale = self._LEVELS / (self._LEVELS - self._threshold)
        mask = (lanes >= self._threshold).to(x.dtype).mul_(scale)
        return x * mask.view(x.shape)

    def extra_repr(self) -> str:
        """The rate, in the module's printed form."""
        return f'p={self.p}'


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with `heads` heads over width `dim`."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f'attention width {dim} is not divisible by {heads} heads')
        self.heads = heads
        self.head_dim = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Sq, D) attends to context (B, Sk, D); bias broadcast to (B, H, Sq, Sk)."""
        b, sq, d = x.shape
        sk = context.shape[1]
        q = self.q(x).reshape(b, sq, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, sk, 2, self.heads, self.head_dim).permute(
            2, 0, 3, 1, 4).unbind(0)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        if bias is not None:
            scores = scores + bias
        attn = self.drop(torch.softmax(scores, dim=-1))
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, sq, d)
        return self.out(y)


class FeedForward(nn.Module):
    """Two-layer GELU MLP, width dim -> dim * ratio -> dim."""

    def __init__(self, dim: int, ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, D) -> (B, S, D)."""
        return self.net(x)


class EncoderBlock(nn.Module):
    """Pre-norm self-attention block: x + Attn(LN(x)), then + FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, D) -> (B, S, D); bias (B or 1, 1, S, S) additive attention mask."""
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, bias))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderBlock(nn.Module):
    """Pre-norm decoder block: self-attention over queries, cross-attention to memory, FFN."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout)
        self.norm3 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio, dropout)
        self.drop = Dropout(dropout)

    def forward(self, q: torch.Tensor, memory: torch.Tensor,
                memory_bias: torch.Tensor | None = None) -> torch.Tensor:
        """q (B, K, D) queries, memory (B, S, D); memory_bias (B, 1, 1, S)."""
        h = self.norm1(q)
        q = q + self.drop(self.self_attn(h, h))
        q = q + self.drop(self.cross_attn(self.norm2(q), memory, memory_bias))
        return q + self.drop(self.ffn(self.norm3(q)))


def key_padding_bias(valid: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, S) validity (1/True = attend) -> additive bias (B, 1, 1, S) of `dtype`."""
    return (1.0 - valid.to(dtype))[:, None, None, :] * NEG_INF


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Fixed 1-D sinusoidal position table, (length, dim) float32."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    i = torch.arange(dim // 2, dtype=torch.float32)[None, :]
    angle = pos / torch.pow(10000.0, 2 * i / dim)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : dim - dim // 2])
    return table
