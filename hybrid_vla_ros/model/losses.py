"""Training objectives of the hybrid architecture.

- ``L_e2e``: L1 between predicted and recorded normalized action chunks (B, K, A); padded
  steps past the end of an episode (``action_valid`` (B, K) false) are masked out.
- ``L_modular``: objectives that train the modular components on their own:
  image-instruction contrastive alignment (samples sharing an instruction group are all
  positives), proprioception prediction from pooled visual tokens, and, when a dataset has
  them, privileged targets (e.g. object positions) predicted from visual tokens.
- ``L_waypoint`` (only when ``loss.waypoint_weight > 0``): smooth L1 between the
  normalized proprioception at the next keyframe (``batch['waypoint']``, see
  ``hybrid_vla_ros.data.keyframes``) and its prediction from the fusion readouts. It trains
  the composed system like L_e2e does, so it is weighted with it.
- ``L = lambda_e2e * (L_e2e + waypoint_weight * L_waypoint) + lambda_modular * L_modular``
  with the lambdas from config.

A training strategy (e2e, staged, hybrid) chooses the lambdas per stage.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .policy import HybridPolicy, masked_mean


def e2e_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Masked L1: pred, target (B, K, A) normalized; valid (B, K) bool -> scalar."""
    w = valid.to(pred.dtype)[..., None]
    denom = (w.sum() * pred.shape[-1]).clamp_min(1.0)
    return ((pred - target).abs() * w).sum() / denom


def alignment_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, temperature: float,
                   groups: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Symmetric InfoNCE between (B, E) image and (B, E) text embeddings.

    `groups` (B,) int64 marks samples that share an instruction; every same-group pair is a
    positive (target probability spread evenly over them), so repeated instructions in a
    batch are not pushed apart. Without groups, only the diagonal is positive.
    """
    img = F.normalize(image_emb, dim=-1)
    txt = F.normalize(text_emb, dim=-1)
    logits = img @ txt.t() / temperature
    if groups is None:
        target = torch.eye(len(img), device=img.device)
    else:
        target = (groups[:, None] == groups[None, :]).to(img.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(target.t() * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i + loss_t)


def modular_losses(policy: HybridPolicy, out: Dict[str, torch.Tensor],
                   batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The modular objectives for one batch; returns the weighted terms and their sum
    ``modular``. Uses ``batch['proprio']`` (B, P) robot units, optional
    ``batch['instruction_group']`` (B,) int64 and ``batch['privileged']`` (B, Q)."""
    cfg = policy.cfg.loss
    heads = policy.modular
    visual = masked_mean(out['visual'])
    terms: Dict[str, torch.Tensor] = {}
    if cfg.contrastive_weight > 0 and visual.shape[0] > 1:
        text = masked_mean(out['language'], out['mask'])
        terms['align'] = cfg.contrastive_weight * alignment_loss(
            heads.image_proj(visual), heads.text_proj(text), cfg.temperature,
            batch.get('instruction_group'))
    if cfg.proprio_weight > 0 and heads.proprio_head is not None:
        target = policy.normalize_proprio(batch['proprio'])
        terms['proprio'] = cfg.proprio_weight * F.smooth_l1_loss(
            heads.proprio_head(visual), target)
    if (cfg.privileged_weight > 0 and heads.privileged_head is not None
            and batch.get('privileged') is not None):
        terms['privileged'] = cfg.privileged_weight * F.smooth_l1_loss(
            heads.privileged_head(visual), batch['privileged'])
    zero = out['actions'].new_zeros(())
    terms['modular'] = sum(terms.values(), zero)
    return terms


def hybrid_objective(policy: HybridPolicy, batch: Dict[str, torch.Tensor],
                     lambda_e2e: Optional[float] = None,
                     lambda_modular: Optional[float] = None) -> Dict[str, torch.Tensor]:
    """Forward `batch` and compute ``L = lambda_e2e * L_e2e + lambda_modular * L_modular``.

    `batch` holds ``images`` (B, N, H, W, 3) uint8, ``token_ids`` / ``mask`` (B, L) int64,
    ``proprio`` (B, P), ``actions`` (B, K, A) robot units, ``action_valid`` (B, K) bool, and
    optionally ``language_tokens`` (B, L, Dl) precomputed by a frozen language encoder.
    ``waypoint`` (B, P) robot units feeds the waypoint objective when the policy has one.
    ``proprio_input`` (B, P), when present, is what the network sees instead of ``proprio``
    (a noise-augmented copy); targets always use the clean ``proprio``. Lambdas default to
    the config's. Returns ``loss`` and every term (``e2e``, ``waypoint``, ``modular`` and
    its parts), each a scalar tensor.
    """
    cfg = policy.cfg.loss
    l1 = cfg.lambda_e2e if lambda_e2e is None else lambda_e2e
    l2 = cfg.lambda_modular if lambda_modular is None else lambda_modular
    out = policy(batch['images'], batch['token_ids'], batch['mask'],
                 batch.get('proprio_input', batch['proprio']), batch.get('language_tokens'))
    target = policy.normalize_actions(batch['actions'])
    terms = {'e2e': e2e_loss(out['actions'], target, batch['action_valid'])}
    supervised = terms['e2e']
    head = policy.modular.waypoint_head
    if head is not None and batch.get('waypoint') is not None:
        terms['waypoint'] = F.smooth_l1_loss(head(out['readouts'].flatten(1)),
                                             policy.normalize_proprio(batch['waypoint']))
        supervised = supervised + cfg.waypoint_weight * terms['waypoint']
    if l2 > 0:
        terms.update(modular_losses(policy, out, batch))
    else:
        terms['modular'] = out['actions'].new_zeros(())
    terms['loss'] = l1 * supervised + l2 * terms['modular']
    return terms
