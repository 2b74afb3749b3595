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


def _saved(tmp_path, name, seed, action_mean=(1.0, 2.0, 3.0)):
    from hybrid_vla_ros.model.config import Stats
    torch.manual_seed(seed)
    policy = build_policy(parse_model_config(tiny_mapping()))
    policy.set_normalization(Stats(mean=[0.0] * 4, std=[1.0] * 4),
                             Stats(mean=list(action_mean), std=[0.5, 0.5, 0.5]))
    save_checkpoint(policy, tmp_path / name,
                    extra={'training': {'global_step': seed * 10, 'topic_map': {'chunk': 5}}})
    return policy


def test_average_weights_writes_the_weighted_mean_that_loads_and_runs(tmp_path, capsys):
    from hybrid_vla_ros.cli import main
    a, b = _saved(tmp_path, 'a', 1), _saved(tmp_path, 'b', 2)
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'b'),
                 '--weights', '3', '1', '--out', str(tmp_path / 'soup')]) == 0
    assert 'next: hybrid-vla export' in capsys.readouterr().out
    soup = load_checkpoint(tmp_path / 'soup').eval()
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    trainable = [n for n, p in soup.named_parameters() if p.requires_grad]
    assert trainable
    for n in trainable:
        torch.testing.assert_close(dict(soup.named_parameters())[n],
                                   0.75 * pa[n] + 0.25 * pb[n], rtol=1e-6, atol=1e-7)
    batch = make_batch(soup, cameras=1)
    with torch.no_grad():
        out = soup.predict(batch['images'], ['open the drawer'] * 3, batch['proprio'])
    assert torch.isfinite(out).all()
    import yaml
    doc = yaml.safe_load((tmp_path / 'soup' / 'config.yaml').read_text())
    assert [e['weight'] for e in doc['averaged_from']] == [0.75, 0.25]
    assert [e['global_step'] for e in doc['averaged_from']] == [10, 20]


def test_average_weights_refuses_checkpoints_of_different_models(tmp_path, capsys):
    from hybrid_vla_ros.cli import main
    _saved(tmp_path, 'a', 1)
    _saved(tmp_path, 'b', 2, action_mean=(9.0, 2.0, 3.0))
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'b'),
                 '--out', str(tmp_path / 'soup')]) == 2
    err = capsys.readouterr().err
    assert 'differ at model.normalization' in err and 'same normalization' in err
    assert not (tmp_path / 'soup').exists()
    assert main(['average-weights', str(tmp_path / 'a'), '--out', str(tmp_path / 's')]) == 2
    assert 'at least two checkpoints' in capsys.readouterr().err
    _saved(tmp_path, 'c', 3)
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'c'),
                 '--weights', '1', '--out', str(tmp_path / 's')]) == 2
    assert 'give one per checkpoint' in capsys.readouterr().err
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'c'),
                 '--weights', '1', '0', '--out', str(tmp_path / 's')]) == 2
    assert 'positive' in capsys.readouterr().err
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'c'),
                 '--out', str(tmp_path / 'a')]) == 2
    assert 'one of the input checkpoints' in capsys.readouterr().err
    (tmp_path / 'c' / 'model.safetensors').write_bytes(b'not safetensors')
    assert main(['average-weights', str(tmp_path / 'a'), str(tmp_path / 'c'),
                 '--out', str(tmp_path / 's')]) == 2
    assert 'not a readable safetensors file' in capsys.readouterr().err
