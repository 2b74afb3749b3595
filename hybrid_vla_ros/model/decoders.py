"""Action decoders: fused tokens -> normalized action chunk (B, K, A) float32."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..schema import ConfigError, spec
from .fusion import FusedTokens
from .layers import DecoderBlock, Dropout, key_padding_bias
from .registry import register


@register('decoder', 'mlp_chunk')
class MlpChunkDecoder(nn.Module):
    """Flattened readout tokens (B, R*D) through an MLP to a whole chunk (B, K, A)."""

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        hidden: int = spec(512, minimum=8, doc='hidden width of the MLP')
        layers: int = spec(2, minimum=1, doc='hidden layers')
        dropout: float = spec(0.1, minimum=0.0, maximum=0.9, doc='dropout rate')

    def __init__(self, cfg: MlpChunkDecoder.Config, dim: int, num_readouts: int, chunk: int,
                 action_dim: int):
        super().__init__()
        layers, width = [], dim * num_readouts
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.GELU(), Dropout(cfg.dropout)]
            width = cfg.hidden
        layers.append(nn.Linear(width, chunk * action_dim))
        self.net = nn.Sequential(*layers)
        self.chunk, self.action_dim = chunk, action_dim

    def forward(self, fused: FusedTokens) -> torch.Tensor:
        """FusedTokens -> (B, K, A)."""
        flat = fused.readouts.flatten(1)
        return self.net(flat).reshape(-1, self.chunk, self.action_dim)


@register('decoder', 'transformer_chunk')
class TransformerChunkDecoder(nn.Module):
    """K learned action queries cross-attending all fused tokens (as in ACT's decoder),
    then a linear map of each query to one action (B, K, A)."""

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        layers: int = spec(2, minimum=1, doc='decoder blocks')
        heads: int = spec(8, minimum=1, doc='attention heads (must divide the fusion dim)')
        mlp_ratio: float = spec(4.0, minimum=0.5, doc='feed-forward width / dim')
        dropout: float = spec(0.1, minimum=0.0, maximum=0.9, doc='dropout rate')

    def __init__(self, cfg: TransformerChunkDecoder.Config, dim: int, num_readouts: int,
                 chunk: int, action_dim: int):
        super().__init__()
        if dim % cfg.heads:
            raise ConfigError(f'decoder.heads: {cfg.heads} does not divide the fusion dim {dim}')
        self.queries = nn.Parameter(torch.randn(chunk, dim) * 0.02)
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, cfg.heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, action_dim)

    def forward(self, fused: FusedTokens) -> torch.Tensor:
        """FusedTokens -> (B, K, A)."""
        b = fused.tokens.shape[0]
        q = self.queries.expand(b, -1, -1)
        bias = key_padding_bias(fused.valid, fused.tokens.dtype)
        for block in self.blocks:
            q = block(q, fused.tokens, bias)
        return self.head(self.norm(q))
