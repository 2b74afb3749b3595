"""The hybrid policy: vision + language encoders, fusion, action decoder, built from config.

It is split into the three deployed parts (docs/architecture.md, "The three deployed parts"):

- ``encode_vision``:   images (B, N, H, W, 3) uint8          -> visual tokens (B, T, Dv)
- ``encode_language``: ids (B, L) int64, mask (B, L) int64   -> language tokens (B, L, Dl)
- ``core``:            visual tokens, language tokens, mask, proprioception (B, P) in robot
  units -> action chunk (B, K, A) in robot units

Training works in normalized action space (``forward`` returns the normalized chunk);
``core`` un-normalizes so that exported graphs and nodes deal in robot units only.
Normalization statistics live in the config (and so in ``config.yaml``), not in the
weights file.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from . import decoders, fusion, language, vision  # noqa: F401  (register components)
from .config import ModelConfig, Stats
from .hf import tokenizer_file


def _stats_tensors(stats: Optional[Stats], dim: int):
    if stats is None:
        return torch.zeros(dim), torch.ones(dim)
    return (torch.tensor(stats.mean, dtype=torch.float32),
            torch.tensor(stats.std, dtype=torch.float32))


class HybridPolicy(nn.Module):
    """A composed hybrid VLA policy (see module docstring for the parts and shapes)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        obs, act = cfg.observation, cfg.action
        self.vision = cfg.vision.cls(cfg.vision.config, obs)
        self.language = cfg.language.cls(cfg.language.config, cfg.instruction_max_tokens)
        self.fusion = cfg.fusion.cls(
            cfg.fusion.config, vision_dim=self.vision.out_dim, num_visual=self.vision.num_tokens,
            language_dim=self.language.out_dim, num_language=cfg.instruction_max_tokens,
            proprio_dim=obs.proprio_dim)
        self.decoder = cfg.decoder.cls(cfg.decoder.config, dim=self.fusion.dim,
                                       num_readouts=self.fusion.num_readouts,
                                       chunk=act.chunk, action_dim=act.dim)
        self.modular = ModularHeads(self.vision.out_dim, self.language.out_dim,
                                    obs.proprio_dim, cfg.loss.privileged_dim,
                                    cfg.loss.modular_dim)
        if cfg.loss.waypoint_weight > 0 and obs.proprio_dim > 0:
            self.modular.waypoint_head = _mlp(self.fusion.dim * self.fusion.num_readouts,
                                              obs.proprio_dim)
        for name in ('action_mean', 'action_std', 'proprio_mean', 'proprio_std'):
            self.register_buffer(name, torch.zeros(0), persistent=False)
        self.set_normalization(cfg.normalization.action, cfg.normalization.proprio)
        self._tokenizer = None

    # ------------------------------------------------------------------ normalization
    def set_normalization(self, action: Optional[Stats], proprio: Optional[Stats]) -> None:
        """Install action / proprioception statistics (None = identity) in the model and
        its config."""
        self.cfg.normalization.action = action
        self.cfg.normalization.proprio = proprio
        self.action_mean, self.action_std = _stats_tensors(action, self.cfg.action.dim)
        self.proprio_mean, self.proprio_std = _stats_tensors(
            proprio, self.cfg.observation.proprio_dim)

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., A) robot units -> normalized."""
        return (actions - self.action_mean) / self.action_std

    def unnormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., A) normalized -> robot units."""
        return actions * self.action_std + self.action_mean

    def normalize_proprio(self, proprio: torch.Tensor) -> torch.Tensor:
        """(B, P) robot units -> normalized."""
        return (proprio - self.proprio_mean) / self.proprio_std

    # ------------------------------------------------------------------ parts
    def encode_vision(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, N, H, W, 3) uint8 -> visual tokens (B, T, Dv) float32."""
        return self.vision(images)

    def encode_language(self, token_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L) int64, mask (B, L) int64 -> language tokens (B, L, Dl) float32."""
        return self.language(token_ids, mask)

    def core_normalized(self, visual: torch.Tensor, language_tokens: torch.Tensor,
                        language_mask: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """Fusion + decoder; proprio (B, P) robot units -> normalized chunk (B, K, A)."""
        return self.decoder(self._fuse(visual, language_tokens, language_mask, proprio))

    def _fuse(self, visual, language_tokens, language_mask, proprio):
        return self.fusion(visual, language_tokens, language_mask,
                           self.normalize_proprio(proprio))

    def core(self, visual: torch.Tensor, language_tokens: torch.Tensor,
             language_mask: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        """The deployed policy core -> action chunk (B, K, A) float32 in robot units."""
        return self.unnormalize_actions(
            self.core_normalized(visual, language_tokens, language_mask, proprio))

    # ------------------------------------------------------------------ whole model
    def forward(self, images: torch.Tensor, token_ids: torch.Tensor, mask: torch.Tensor,
                proprio: torch.Tensor,
                language_tokens: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Training forward pass. Returns ``actions`` (B, K, A) normalized, plus the
        intermediate ``visual`` (B, T, Dv) and ``language`` (B, L, Dl) tokens that the
        modular objectives use and the fusion ``readouts`` (B, R, D) the waypoint objective
        reads. `language_tokens` (B, L, Dl), when given, replaces the language encoder (a
        trainer caches a frozen encoder's output per instruction)."""
        visual = self.encode_vision(images)
        lang = (self.encode_language(token_ids, mask) if language_tokens is None
                else language_tokens)
        fused = self._fuse(visual, lang, mask, proprio)
        return {'actions': self.decoder(fused), 'visual': visual, 'language': lang,
                'mask': mask, 'readouts': fused.readouts}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, instructions: Sequence[str],
                proprio: torch.Tensor) -> torch.Tensor:
        """Convenience inference: raw inputs -> action chunk (B, K, A) in robot units."""
        ids, mask = self.tokenize(instructions)
        visual = self.encode_vision(images)
        lang = self.encode_language(ids, mask)
        return self.core(visual, lang, mask, proprio)

    # ------------------------------------------------------------------ text
    @property
    def tokenizer(self):
        """The `InstructionTokenizer` for this model's language encoder (built lazily)."""
        if self._tokenizer is None:
            from ..tokenizer import InstructionTokenizer
            path = tokenizer_file(self.language.tokenizer_model, 'language')
            self._tokenizer = InstructionTokenizer(path, self.cfg.instruction_max_tokens)
        return self._tokenizer

    def tokenize(self, instructions: Sequence[str]):
        """Instructions -> (ids, mask) torch int64 tensors, each (B, L)."""
        ids, mask = self.tokenizer(instructions)
        device = self.action_mean.device
        return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

    # ------------------------------------------------------------------ bookkeeping
    def external_state_prefixes(self) -> List[str]:
        """State-dict prefixes of frozen pretrained weights that checkpoints do not store
        (they are re-read from their source when the model is built)."""
        out = []
        for name in ('vision', 'language'):
            part = getattr(self, name)
            fn = getattr(part, 'external_state_prefixes', None)
            if fn is not None:
                out += [f'{name}.{p}' for p in fn()]
        return out

    def parameter_counts(self) -> Dict[str, Dict[str, int]]:
        """Parameters per part: {'vision': {'total': n, 'trainable': m}, ...}."""
        counts = {}
        for name in ('vision', 'language', 'fusion', 'decoder', 'modular'):
            params = list(getattr(self, name).parameters())
            counts[name] = {'total': sum(p.numel() for p in params),
                            'trainable': sum(p.numel() for p in params if p.requires_grad)}
        return counts


class ModularHeads(nn.Module):
    """Training-only heads for the modular objectives (never exported):
    image/instruction projections for contrastive alignment, proprioception prediction
    from visual tokens, optional privileged-target prediction, and (set by the policy when
    ``loss.waypoint_weight > 0``) ``waypoint_head``: flattened fusion readouts (B, R*D) ->
    normalized proprioception at the next keyframe (B, P)."""

    def __init__(self, vision_dim: int, language_dim: int, proprio_dim: int,
                 privileged_dim: int, dim: int):
        super().__init__()
        self.image_proj = nn.Sequential(nn.LayerNorm(vision_dim), nn.Linear(vision_dim, dim))
        self.text_proj = nn.Sequential(nn.LayerNorm(language_dim), nn.Linear(language_dim, dim))
        self.proprio_head = _mlp(vision_dim, proprio_dim) if proprio_dim > 0 else None
        self.privileged_head = _mlp(vision_dim, privileged_dim) if privileged_dim > 0 else None
        self.waypoint_head: Optional[nn.Module] = None


def _mlp(d_in: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, 256), nn.GELU(),
                         nn.Linear(256, d_out))


def masked_mean(tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over the token axis: (B, S, D), mask (B, S) (1 = keep) -> (B, D)."""
    if mask is None:
        return tokens.mean(dim=1)
    w = mask.to(tokens.dtype)[..., None]
    return (tokens * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def build_policy(cfg: ModelConfig) -> HybridPolicy:
    """Build a `HybridPolicy` from a validated `ModelConfig`."""
    return HybridPolicy(cfg)

