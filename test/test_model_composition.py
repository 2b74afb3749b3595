"""Every valid composition builds, runs forward and backward with the right shapes."""

import pytest
import torch

from hybrid_vla_ros.model import build_policy, hybrid_objective, parse_model_config
from hybrid_vla_ros.model.layers import Dropout

from model_configs import tiny_mapping, valid_combinations

COMBOS = list(valid_combinations())


def make_batch(policy, b=3, cameras=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = policy.cfg
    ids, mask = policy.tokenize(['open the drawer', 'close the window',
                                 'pick up the red block and put it on the plate'][:b])
    k, a = cfg.action.chunk, cfg.action.dim
    valid = torch.ones(b, k, dtype=torch.bool)
    valid[0, -2:] = False
    return {
        'images': torch.randint(0, 256, (b, cameras, 32, 32, 3), dtype=torch.uint8, generator=g),
        'token_ids': ids, 'mask': mask,
        'proprio': torch.randn(b, cfg.observation.proprio_dim, generator=g),
        'actions': torch.randn(b, k, a, generator=g),
        'action_valid': valid,
        'instruction_group': torch.arange(b),
        'privileged': torch.randn(b, 2, generator=g),
    }


def test_all_twelve_combinations_are_covered():
    assert len(COMBOS) == 12


@pytest.mark.parametrize('vision,language,fusion,decoder', COMBOS)
def test_forward_backward(vision, language, fusion, decoder):
    torch.manual_seed(0)
    cfg = parse_model_config(tiny_mapping(vision, language, fusion, decoder, cameras=2))
    policy = build_policy(cfg).train()
    batch = make_batch(policy)
    out = policy(batch['images'], batch['token_ids'], batch['mask'], batch['proprio'])
    assert out['actions'].shape == (3, 5, 4) and out['actions'].dtype == torch.float32
    assert out['visual'].shape == (3, policy.vision.num_tokens, policy.vision.out_dim)
    assert out['language'].shape == (3, 12, policy.language.out_dim)
    assert torch.isfinite(out['actions']).all()

    terms = hybrid_objective(policy, batch)
    for name in ('loss', 'e2e', 'modular', 'align', 'proprio', 'privileged'):
        assert terms[name].dim() == 0 and torch.isfinite(terms[name]), name
    terms['loss'].backward()
    for name, p in policy.named_parameters():
        if p.requires_grad and not name.startswith('language.encoder'):
            assert p.grad is not None, f'{name} got no gradient'
    # Every part that is not frozen learns from the combined loss.
    for part in ('vision', 'fusion', 'decoder', 'modular'):
        grads = [p.grad.abs().sum() for p in getattr(policy, part).parameters()
                 if p.grad is not None]
        assert grads and sum(grads) > 0, part

    # The deployed split gives the same chunk as the training path, in robot units.
    policy.eval()
    with torch.no_grad():
        vis = policy.encode_vision(batch['images'])
        lang = policy.encode_language(batch['token_ids'], batch['mask'])
        chunk = policy.core(vis, lang, batch['mask'], batch['proprio'])
        whole = policy(batch['images'], batch['token_ids'], batch['mask'], batch['proprio'])
    assert chunk.shape == (3, 5, 4)
    torch.testing.assert_close(chunk, policy.unnormalize_actions(whole['actions']))


def test_camera_embedding_distinguishes_cameras():
    cfg = parse_model_config(tiny_mapping(cameras=2))
    policy = build_policy(cfg).eval()
    img = torch.randint(0, 256, (1, 1, 32, 32, 3), dtype=torch.uint8)
    both = torch.cat([img, img], dim=1)
    tokens = policy.encode_vision(both)
    half = tokens.shape[1] // 2
    assert not torch.allclose(tokens[:, :half], tokens[:, half:])


def test_readouts_are_not_attended_by_observations():
    torch.manual_seed(0)
    cfg = parse_model_config(tiny_mapping())
    policy = build_policy(cfg).eval()
    batch = make_batch(policy, b=1, cameras=1)
    vis = policy.encode_vision(batch['images'])
    lang = policy.encode_language(batch['token_ids'], batch['mask'])
    prop = policy.normalize_proprio(batch['proprio'])
    with torch.no_grad():
        a = policy.fusion(vis, lang, batch['mask'], prop)
        policy.fusion.readout_tokens.add_(1.0)
        b = policy.fusion(vis, lang, batch['mask'], prop)
    n_obs = a.tokens.shape[1] - policy.fusion.num_readouts
    torch.testing.assert_close(a.tokens[:, :n_obs], b.tokens[:, :n_obs])
    assert not torch.allclose(a.readouts, b.readouts)


def test_padding_tokens_do_not_change_the_result():
    torch.manual_seed(0)
    cfg = parse_model_config(tiny_mapping(language='learned'))
    policy = build_policy(cfg).eval()
    batch = make_batch(policy, b=1, cameras=1)
    ids, mask = batch['token_ids'].clone(), batch['mask']
    with torch.no_grad():
        ref = policy(batch['images'], ids, mask, batch['proprio'])['actions']
        ids[mask == 0] = 77  # garbage where the mask says padding
        other = policy(batch['images'], ids, mask, batch['proprio'])['actions']
    torch.testing.assert_close(ref, other)


def test_coord_channels_tell_the_cnn_where_pixels_are(tmp_path):
    """`vision.coord_channels`: x / y in [-1, 1] enter the first conv as two channels (so a
    uniform image gives position-dependent features before any position embedding), and
    the exported graph matches torch (export checks parity and fails otherwise)."""
    from hybrid_vla_ros.export.onnx_export import export_checkpoint
    from hybrid_vla_ros.model import save_checkpoint
    from hybrid_vla_ros.model.config import Stats
    mapping = tiny_mapping()
    mapping['vision']['coord_channels'] = True
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(mapping))
    cnn = policy.vision
    assert cnn.backbone[0].in_channels == 5
    assert cnn.coords[0, 0, 0, 0] == -1 and cnn.coords[0, 0, 0, -1] == 1   # x
    assert cnn.coords[0, 1, 0, 0] == -1 and cnn.coords[0, 1, -1, 0] == 1   # y
    flat = torch.full((1, 3, 32, 32), 0.5)
    features = cnn.backbone(torch.cat([flat, cnn.coords], 1))
    assert features.std(dim=(2, 3)).max() > 1e-4   # not the same at every position
    policy.set_normalization(Stats(mean=[0.0] * 4, std=[1.0] * 4),
                             Stats(mean=[0.0] * 3, std=[1.0] * 3))
    save_checkpoint(policy, tmp_path / 'ckpt')
    export_checkpoint(tmp_path / 'ckpt', log=lambda *a: None)
    assert (tmp_path / 'ckpt' / 'onnx' / 'vision.onnx').is_file()


def test_spatial_softmax_keypoints_say_where_the_peak_is(tmp_path):
    """`vision.keypoints`: K extra tokens per camera; each keypoint's soft-argmax lands on its
    heat map's peak (x, y in [-1, 1], x to the right, y down); the exported graph matches
    torch (export checks parity and fails otherwise)."""
    from hybrid_vla_ros.export.onnx_export import export_checkpoint
    from hybrid_vla_ros.model import save_checkpoint
    from hybrid_vla_ros.model.config import Stats
    mapping = tiny_mapping()
    mapping['vision']['keypoints'] = 3
    torch.manual_seed(0)
    policy = build_policy(parse_model_config(mapping))
    cnn = policy.vision
    grid_tokens = cnn.grid[0] * cnn.grid[1]
    assert cnn.tokens_per_camera == grid_tokens + 3
    head = cnn.keypoints
    channels = head.heatmap.in_channels
    with torch.no_grad():
        head.heatmap.weight.zero_()
        head.heatmap.bias.zero_()
        for k in range(3):
            head.heatmap.weight[k, k, 0, 0] = 1.0
        head.log_temperature.fill_(4.0)   # sharp: exp(4) ~ 55
    features = torch.zeros(1, channels, 8, 8)
    peaks = [(0, 0), (7, 7), (2, 5)]       # (row, col)
    for k, (r, c) in enumerate(peaks):
        features[0, k, r, c] = 1.0
    xy = head.positions(features)[0]
    expected = torch.tensor([[-1.0 + 2 * c / 7, -1.0 + 2 * r / 7] for r, c in peaks])
    torch.testing.assert_close(xy, expected, atol=0.02, rtol=0)
    images = torch.randint(0, 255, (2, 1, 32, 32, 3), dtype=torch.uint8)
    assert policy.vision(images).shape == (2, grid_tokens + 3, cnn.out_dim)
    policy.set_normalization(Stats(mean=[0.0] * 4, std=[1.0] * 4),
                             Stats(mean=[0.0] * 3, std=[1.0] * 3))
    save_checkpoint(policy, tmp_path / 'ckpt')
    export_checkpoint(tmp_path / 'ckpt', log=lambda *a: None)
    assert (tmp_path / 'ckpt' / 'onnx' / 'vision.onnx').is_file()



def test_dropout_keeps_the_rate_scales_the_rest_and_is_identity_in_eval():
    drop = Dropout(0.1).train()
    x = torch.full((64, 40, 96), 2.0, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    # 245 760 draws: the kept fraction is 0.9 within five standard deviations (0.003).
    assert abs(kept.float().mean().item() - 0.9) < 0.003
    scale = 32768 / (32768 - 3277)      # the rate is rounded to 3277 / 32768
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 * scale))
    # Every int16 lane of the int64 draws is used alike (the top one has a zero bit).
    lanes = kept.flatten()[: 4 * (kept.numel() // 4)].view(-1, 4).float().mean(0)
    assert torch.all((lanes - 0.9).abs() < 0.006), lanes
    torch.manual_seed(3)
    torch.testing.assert_close(drop(x), y)          # reproducible from torch's seed
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * scale)
    assert drop.eval()(x) is x
    assert Dropout(0.0).train()(x) is x
    with pytest.raises(ValueError, match='outside'):
        Dropout(1.0)
