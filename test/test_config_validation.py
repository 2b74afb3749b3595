"""Configuration errors name the key path and, where there is a choice, the allowed values."""

import copy
from pathlib import Path

import pytest

from hybrid_vla_ros.model import load_model_config, parse_model_config
from hybrid_vla_ros.schema import ConfigError, load_yaml

from conftest import REPO


@pytest.fixture(scope='module')
def default_mapping():
    return load_yaml(f'{REPO}/config/models/default.yaml')


def _error(mapping):
    with pytest.raises(ConfigError) as info:
        parse_model_config(mapping)
    return str(info.value)


@pytest.mark.parametrize('name', ['default.yaml', 'early_fusion.yaml'])
def test_shipped_model_configs_validate(name):
    cfg = load_model_config(f'{REPO}/config/models/{name}')
    assert cfg.action.chunk == 8
    again = parse_model_config(cfg.to_mapping())
    assert again.to_mapping() == cfg.to_mapping()
    assert again.architecture_hash() == cfg.architecture_hash()


def test_unknown_key_is_named(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['fusion']['layerz'] = 3
    msg = _error(m)
    assert 'model.fusion.layerz' in msg and 'unknown key' in msg and 'layers' in msg


def test_unknown_component_type_lists_choices(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['decoder']['type'] = 'diffusion'
    msg = _error(m)
    assert 'model.decoder.type' in msg and "'diffusion'" in msg
    assert 'mlp_chunk' in msg and 'transformer_chunk' in msg


def test_wrong_value_type_is_named(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['fusion']['layers'] = 'four'
    msg = _error(m)
    assert 'model.fusion.layers' in msg and 'integer' in msg and "'four'" in msg


def test_out_of_range_value_is_named(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['action']['chunk'] = 0
    assert 'model.action.chunk' in _error(m)


def test_nested_list_item_path(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['observation']['cameras'][0]['height'] = 'tall'
    assert 'model.observation.cameras[0].height' in _error(m)


def test_heads_must_divide_dim(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['fusion']['heads'] = 7
    assert 'model.fusion.heads' in _error(m)


def test_incompatible_composition_is_refused(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['fusion'] = {'type': 'early'}
    msg = _error(m)
    assert 'model.vision.type' in msg and "'patch'" in msg


def test_statistics_size_must_match(default_mapping):
    m = copy.deepcopy(default_mapping)
    m['normalization'] = {'action': {'mean': [0, 0], 'std': [1, 1]}}
    assert 'model.normalization.action' in _error(m)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match='file not found'):
        load_model_config(tmp_path / 'nope.yaml')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('vision: [unclosed\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_model_config(bad)
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text('fusion:\n  type: transformer\n  dim: -3\n')
    with pytest.raises(ConfigError, match=r'wrong\.yaml: model\.fusion\.dim'):
        load_model_config(wrong)


def test_training_config_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    """`config/data/metaworld.yaml` in a training config means the package's file wherever
    the command runs; a path that exists nowhere names every place looked in."""
    from hybrid_vla_ros.training.config import load_train_config
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(f'{REPO}/config/train/default.yaml')
    assert cfg.data.topic_map == f'{REPO}/config/data/metaworld.yaml'
    assert cfg.model['fusion']['type'] == 'transformer'
    bad = tmp_path / 'train.yaml'
    bad.write_text('data: {topic_map: maps/mine.yaml}\n')
    with pytest.raises(ConfigError, match=r'data\.topic_map: maps/mine.yaml not found') as err:
        load_train_config(bad)
    assert str(tmp_path / 'maps/mine.yaml') in str(err.value)


def test_training_config_model_base_with_overrides(tmp_path):
    """`model: {base: FILE, ...}` takes a model YAML and changes some of its keys; nested
    mappings merge, so the rest of the file's `loss` section stays."""
    from hybrid_vla_ros.training.config import load_train_config
    path = tmp_path / 'train.yaml'
    path.write_text(f'model: {{base: {REPO}/config/models/default.yaml, '
                    'loss: {waypoint_weight: 0.5}, fusion: {layers: 2}}\n')
    cfg = load_train_config(path)
    assert cfg.model['loss']['waypoint_weight'] == 0.5
    assert cfg.model['loss']['lambda_modular'] == 0.1        # kept from the base file
    assert cfg.model['fusion'] == dict(load_yaml(f'{REPO}/config/models/default.yaml')[
        'fusion'], layers=2)
    path.write_text('model: {base: [not, a, path]}\n')
    with pytest.raises(ConfigError, match='model.base: expected the path of a model YAML'):
        load_train_config(path)


def test_training_config_base_file_states_only_what_changes(tmp_path, monkeypatch):
    """A top-level `base:` reads another training YAML under this one: the stage-3 MT50
    config keeps stage 2's model, data and schedule and changes epochs and lr; paths in the
    base mean what they meant next to it, from any directory; a cycle is named."""
    from hybrid_vla_ros.training.config import load_train_config
    monkeypatch.chdir(tmp_path)
    stage2 = load_train_config(f'{REPO}/config/train/mt50_stage2.yaml')
    stage3 = load_train_config(f'{REPO}/config/train/mt50_stage3.yaml')
    assert (stage3.optim.epochs, stage3.optim.lr) == (1.5, 1.5e-4)
    assert (stage2.optim.epochs, stage2.optim.lr) == (3.0, 2.0e-4)
    assert stage3.model == stage2.model
    assert stage3.data.topic_map == stage2.data.topic_map == f'{REPO}/config/data/mt50.yaml'
    assert stage3.optim.warmup_steps == stage2.optim.warmup_steps
    a, b = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    a.write_text('base: b.yaml\n')
    b.write_text('base: a.yaml\n')
    with pytest.raises(ConfigError, match='base: a.yaml makes a cycle of bases'):
        load_train_config(a)
    a.write_text('base: 3\n')
    with pytest.raises(ConfigError, match='base: expected the path of a training YAML'):
        load_train_config(a)


def test_ema_decay_out_of_range_is_named(tmp_path):
    from hybrid_vla_ros.training.config import load_train_config
    path = tmp_path / 'ema.yaml'
    path.write_text('optim: {ema_decay: 1.0}\n')
    with pytest.raises(ConfigError, match='optim.ema_decay'):
        load_train_config(path)
    stage6 = load_train_config(f'{REPO}/config/train/mt50_stage6.yaml')
    assert stage6.optim.ema_decay == 0.999
    assert stage6.model['language']['pool'] == 'none'  # stage 5's, through base:
    # Stage 7 (DAgger) keeps stage 6's averaged weights and drop_failed, which keeps its
    # policy-driven episodes (test_training: test_drop_failed_leaves_out_failed_demonstrations).
    stage7 = load_train_config(f'{REPO}/config/train/mt50_stage7.yaml')
    assert (stage7.optim.epochs, stage7.optim.ema_decay) == (0.4, 0.999)
    assert stage7.data.drop_failed and stage7.model == stage6.model
    # Stage 8 leaves the protocol expert's disassemble labels out and reads the revised
    # expert's twice, otherwise stage 7's recipe.
    stage8 = load_train_config(f'{REPO}/config/train/mt50_stage8.yaml')
    weights = {(w.task, w.path): w.weight for w in stage8.data.episode_weights}
    assert weights[('disassemble', '*/mt50/*')] == 0 and weights[(None, '*/mt50_revised/*')] == 2
    assert stage8.optim.epochs == 0.5 and stage8.model == stage7.model
    # Stage 9 is stage 8's recipe over more data: the same weights through base:.
    stage9 = load_train_config(f'{REPO}/config/train/mt50_stage9.yaml')
    assert stage9.data.episode_weights == stage8.data.episode_weights
    assert stage9.optim == stage8.optim and stage9.model == stage8.model
    # Stage 10 (shipped) keeps stage 8's four rules (a base: list replaces, so it restates
    # them) and labels plate-slide-back by the revised expert only.
    stage10 = load_train_config(f'{REPO}/config/train/mt50_stage10.yaml')
    assert stage10.data.episode_weights[:4] == stage8.data.episode_weights
    weights = {(w.task, w.path): w.weight for w in stage10.data.episode_weights}
    assert weights[('plate-slide-back', '*/mt50/*')] == 0
    assert weights[('pick-out-of-hole', '*/mt50_dagger9/*')] == 0
    assert stage10.optim == stage9.optim and stage10.model == stage9.model
    # Stage 11 (shipped) keeps stage 10's rules, labels basketball by the revised expert
    # only and trains a quarter epoch.
    stage11 = load_train_config(f'{REPO}/config/train/mt50_stage11.yaml')
    assert stage11.data.episode_weights[:8] == stage10.data.episode_weights
    weights = {(w.task, w.path): w.weight for w in stage11.data.episode_weights}
    assert all(weights[('basketball', p)] == 0 for p in
               ('*/mt50/*', '*/mt50_extra2/*', '*/mt50_dagger7/*', '*/mt50_dagger9/*'))
    assert stage11.optim.epochs == 0.25 and stage11.model == stage10.model
    # Stage 12 (shipped) keeps stage 11's rules and labels peg-insert-side by the revised
    # expert only; bin-picking's revised episodes stay out.
    stage12 = load_train_config(f'{REPO}/config/train/mt50_stage12.yaml')
    assert stage12.data.episode_weights[:12] == stage11.data.episode_weights
    weights = {(w.task, w.path): w.weight for w in stage12.data.episode_weights}
    assert all(weights[('peg-insert-side', p)] == 0 for p in
               ('*/mt50/*', '*/mt50_extra/*', '*/mt50_extra2/*', '*/mt50_dagger7/*',
                '*/mt50_dagger8/*', '*/mt50_dagger9/*'))
    assert weights[('bin-picking', '*/mt50_revised_grasp/*')] == 0
    assert stage12.optim == stage11.optim and stage12.model == stage11.model


@pytest.mark.parametrize('path', sorted(Path(REPO, 'config', 'train').rglob('*.yaml')),
                         ids=lambda p: str(p.relative_to(Path(REPO, 'config', 'train'))))
def test_every_shipped_training_config_validates(path):
    # The commands in docs/ and in the ablation files' comments must start, not stop on a
    # key a later change renamed (`base:` chains included).
    from hybrid_vla_ros.training.config import load_train_config
    cfg = load_train_config(str(path))
    assert cfg.optim.epochs > 0 and cfg.model
