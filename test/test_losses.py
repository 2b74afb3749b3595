"""The objectives compute what they claim."""

import torch

from hybrid_vla_ros.model import build_policy, e2e_loss, hybrid_objective, parse_model_config
from hybrid_vla_ros.model.losses import alignment_loss

from model_configs import tiny_mapping
from test_model_composition import make_batch


def test_e2e_loss_ignores_padded_steps():
    pred = torch.zeros(2, 4, 3)
    target = torch.ones(2, 4, 3)
    valid = torch.ones(2, 4, dtype=torch.bool)
    assert e2e_loss(pred, target, valid).item() == 1.0
    target[:, 2:] = 100.0
    valid[:, 2:] = False
    assert e2e_loss(pred, target, valid).item() == 1.0


def test_alignment_prefers_matched_pairs_and_respects_groups():
    torch.manual_seed(0)
    z = torch.randn(4, 8)
    matched = alignment_loss(z, z, 0.1)
    shuffled = alignment_loss(z, z[[1, 0, 3, 2]], 0.1)
    assert matched < shuffled
    # Two samples with the same instruction group: swapping them within the group is fine.
    groups = torch.tensor([0, 0, 1, 2])
    within = alignment_loss(z, z[[1, 0, 2, 3]], 0.1, groups)
    across = alignment_loss(z, z[[2, 3, 0, 1]], 0.1, groups)
    assert within < across


def test_hybrid_objective_combines_with_lambdas():
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(tiny_mapping())).eval()
    batch = make_batch(policy, cameras=1)
    t = hybrid_objective(policy, batch, lambda_e2e=0.7, lambda_modular=0.3)
    torch.testing.assert_close(t['loss'], 0.7 * t['e2e'] + 0.3 * t['modular'])
    torch.testing.assert_close(t['modular'], t['align'] + t['proprio'] + t['privileged'])
    only_e2e = hybrid_objective(policy, batch, lambda_e2e=1.0, lambda_modular=0.0)
    torch.testing.assert_close(only_e2e['loss'], only_e2e['e2e'])


def test_waypoint_objective_is_weighted_with_e2e():
    torch.manual_seed(0)
    mapping = tiny_mapping()
    mapping['loss']['waypoint_weight'] = 0.5
    policy = build_policy(parse_model_config(mapping)).eval()
    batch = make_batch(policy, cameras=1)
    batch['waypoint'] = torch.randn_like(batch['proprio'])
    t = hybrid_objective(policy, batch, lambda_e2e=0.7, lambda_modular=0.3)
    assert t['waypoint'] > 0
    torch.testing.assert_close(t['loss'], 0.7 * (t['e2e'] + 0.5 * t['waypoint'])
                               + 0.3 * t['modular'])
    # Without the weight there is no head and no term, and old checkpoints keep loading.
    plain = build_policy(parse_model_config(tiny_mapping()))
    assert plain.modular.waypoint_head is None
    assert 'waypoint' not in hybrid_objective(plain, batch)
    assert not any('waypoint' in k for k in plain.state_dict())


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(tiny_mapping())).train()
    batch = make_batch(policy, cameras=1)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = hybrid_objective(policy, batch)['loss']
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.5 * first
