"""Frozen parts stay fixed; checkpoints round-trip; frozen pretrained weights are not stored."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

from hybrid_vla_ros.model import (build_policy, hybrid_objective, load_checkpoint,
                                  parse_model_config, save_checkpoint)
from hybrid_vla_ros.schema import ConfigError

from model_configs import TINY_VIT, tiny_mapping
from test_model_composition import make_batch


@pytest.fixture
def local_vit_dir(tmp_path):
    kwargs = dict(TINY_VIT)
    model = AutoModel.from_config(AutoConfig.for_model(kwargs.pop('model_type'), **kwargs))
    out = tmp_path / 'tiny_vit'
    model.save_pretrained(out)
    return str(out)


def test_frozen_parts_get_no_gradient_and_keep_weights(local_vit_dir):
    torch.manual_seed(0)
    m = tiny_mapping(vision='hf', language='hf_text')
    m['vision'] = {'type': 'hf', 'model': local_vit_dir, 'freeze': True}
    policy = build_policy(parse_model_config(m)).train()
    frozen = {n: p.detach().clone() for n, p in policy.named_parameters()
              if n.startswith(('vision.backbone.', 'language.encoder.'))}
    assert frozen and all(not p.requires_grad for n, p in policy.named_parameters()
                          if n in frozen)
    trainable_before = {n: p.detach().clone() for n, p in policy.named_parameters()
                        if p.requires_grad}
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    batch = make_batch(policy, cameras=1)
    hybrid_objective(policy, batch)['loss'].backward()
    for n, p in policy.named_parameters():
        if n in frozen:
            assert p.grad is None, f'frozen {n} received a gradient'
    opt.step()
    for n, p in policy.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f'frozen {n} changed'
    changed = [n for n, p in policy.named_parameters()
               if n in trainable_before and not torch.equal(p, trainable_before[n])]
    assert len(changed) > 0.9 * len(trainable_before)
    assert not policy.vision.backbone.training and not policy.language.encoder.training


def test_checkpoint_round_trip_is_identical(tmp_path, local_vit_dir):
    torch.manual_seed(0)
    m = tiny_mapping(vision='cnn', language='hf_text', decoder='transformer_chunk')
    policy = build_policy(parse_model_config(m))
    from hybrid_vla_ros.model.config import Stats
    policy.set_normalization(Stats(mean=[0.1, 0.2, 0.3, 0.4], std=[1.0, 2.0, 3.0, 4.0]),
                             Stats(mean=[1.0, 2.0, 3.0], std=[0.5, 0.5, 0.5]))
    policy.eval()
    batch = make_batch(policy, cameras=1)
    with torch.no_grad():
        ref = policy.predict(batch['images'], ['open the drawer'] * 3, batch['proprio'])
    save_checkpoint(policy, tmp_path / 'ckpt', extra={'provenance': {'note': 'test'}})
    stored = load_file(str(tmp_path / 'ckpt' / 'model.safetensors'))
    assert not any(k.startswith('language.encoder.') for k in stored), \
        'frozen MiniLM weights must not be stored'
    loaded = load_checkpoint(tmp_path / 'ckpt').eval()
    with torch.no_grad():
        out = loaded.predict(batch['images'], ['open the drawer'] * 3, batch['proprio'])
    assert torch.equal(ref, out)
    assert loaded.cfg.normalization.action.std == [1.0, 2.0, 3.0, 4.0]
    assert loaded.cfg.architecture_hash() == policy.cfg.architecture_hash()


def test_trainable_language_encoder_is_stored(tmp_path):
    m = tiny_mapping(language='hf_text')
    m['language']['freeze'] = False
    policy = build_policy(parse_model_config(m))
    save_checkpoint(policy, tmp_path / 'ckpt')
    stored = load_file(str(tmp_path / 'ckpt' / 'model.safetensors'))
    assert any(k.startswith('language.encoder.') for k in stored)


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        load_checkpoint(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ConfigError, match='config.yaml is missing'):
        load_checkpoint(tmp_path / 'empty')
    a = build_policy(parse_model_config(tiny_mapping()))
    save_checkpoint(a, tmp_path / 'a')
    b = build_policy(parse_model_config(tiny_mapping(decoder='transformer_chunk')))
    save_checkpoint(b, tmp_path / 'b')
    (tmp_path / 'a' / 'model.safetensors').replace(tmp_path / 'mixed.safetensors')
    (tmp_path / 'b' / 'model.safetensors').replace(tmp_path / 'a' / 'model.safetensors')
    with pytest.raises(ConfigError, match='does not match config.yaml'):
        load_checkpoint(tmp_path / 'a')
