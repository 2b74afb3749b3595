"""Fusion transformers: visual, language and proprioception tokens -> fused tokens.

Both fusions project each modality to width ``dim``, add a learned modality-type embedding,
append ``readouts`` learned readout tokens and run a stack of self-attention blocks.
Readout tokens attend to everything; nothing else attends to them (as in Octo), so the
action head can be swapped without changing what the backbone computes. Padded language
tokens are masked out.

- ``transformer``: the seed's *modular + transformer* composition — takes tokens from a
  separate vision encoder (``encoded``).
- ``early``: the seed's *end-to-end + modular* composition — takes raw image patches
  (vision type ``patch``) and instruction tokens in one transformer, which is therefore
  deeper by default.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import nn

from ..schema import ConfigError, spec
from .layers import NEG_INF, EncoderBlock, key_padding_bias
from .registry import register


class FusedTokens(NamedTuple):
    """Fusion output. tokens (B, S, D) float32 (readouts last), valid (B, S) float32
    (1 = real token), readouts (B, R, D) float32."""

    tokens: torch.Tensor
    valid: torch.Tensor
    readouts: torch.Tensor


@dataclasses.dataclass
class FusionConfig:
    """Fusion transformer hyper-parameters."""

    dim: int = spec(256, minimum=8, doc='token width D inside the fusion transformer')
    layers: int = spec(4, minimum=1, doc='self-attention blocks')
    heads: int = spec(8, minimum=1, doc='attention heads (must divide dim)')
    mlp_ratio: float = spec(4.0, minimum=0.5, doc='feed-forward width / dim')
    dropout: float = spec(0.1, minimum=0.0, maximum=0.9, doc='dropout rate')
    readouts: int = spec(4, minimum=1, doc='learned readout tokens for the action head')

    def validate(self, path: str) -> None:
        """dim must split evenly across heads."""
        if self.dim % self.heads:
            raise ConfigError(f'{path}.heads: {self.heads} does not divide dim={self.dim}')


@register('fusion', 'transformer')
class TransformerFusion(nn.Module):
    """Modular + transformer fusion over encoded visual tokens (see module docstring)."""

    vision_token_kind = 'encoded'
    Config = FusionConfig

    def __init__(self, cfg: FusionConfig, vision_dim: int, num_visual: int, language_dim: int,
                 num_language: int, proprio_dim: int):
        super().__init__()
        d = cfg.dim
        self.dim = d
        self.num_readouts = cfg.readouts
        self.vision_in = nn.Linear(vision_dim, d)
        self.language_in = nn.Linear(language_dim, d)
        self.proprio_in = nn.Linear(proprio_dim, d) if proprio_dim > 0 else None
        n_types = 4
        self.type_embedding = nn.Parameter(torch.randn(n_types, d) * 0.02)
        self.readout_tokens = nn.Parameter(torch.randn(cfg.readouts, d) * 0.02)
        self.blocks = nn.ModuleList(
            EncoderBlock(d, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(d)
        n_obs = num_visual + num_language + (1 if proprio_dim > 0 else 0)
        seq = n_obs + cfg.readouts
        # Observation queries may not look at readout keys; readouts see everything.
        structure = torch.zeros(seq, seq)
        structure[:n_obs, n_obs:] = NEG_INF
        self.register_buffer('structure_bias', structure[None, None], persistent=False)
        self.num_visual = num_visual

    def forward(self, visual: torch.Tensor, language: torch.Tensor, language_mask: torch.Tensor,
                proprio: torch.Tensor) -> FusedTokens:
        """visual (B, T, Dv), language (B, L, Dl), language_mask (B, L) int64,
        proprio (B, P) normalized float32 -> FusedTokens."""
        b = visual.shape[0]
        parts = [self.vision_in(visual) + self.type_embedding[0],
                 self.language_in(language) + self.type_embedding[1]]
        ones = visual.new_ones(b, visual.shape[1])
        valid = [ones, language_mask.to(visual.dtype)]
        if self.proprio_in is not None:
            parts.append(self.proprio_in(proprio)[:, None, :] + self.type_embedding[2])
            valid.append(visual.new_ones(b, 1))
        parts.append((self.readout_tokens + self.type_embedding[3]).expand(b, -1, -1))
        valid.append(visual.new_ones(b, self.num_readouts))
        x = torch.cat(parts, dim=1)
        valid_t = torch.cat(valid, dim=1)
        bias = self.structure_bias + key_padding_bias(valid_t, x.dtype)
        for block in self.blocks:
            x = block(x, bias)
        x = self.norm(x)
        return FusedTokens(x, valid_t, x[:, -self.num_readouts:])


@dataclasses.dataclass
class EarlyFusionConfig(FusionConfig):
    """Early fusion hyper-parameters: as the transformer fusion, deeper by default."""

    layers: int = spec(6, minimum=1, doc='self-attention blocks')


@register('fusion', 'early')
class EarlyFusion(TransformerFusion):
    """End-to-end + modular fusion: raw image patches and instruction tokens enter one
    transformer directly; there is no separate vision encoder."""

    vision_token_kind = 'patches'
    Config = EarlyFusionConfig
