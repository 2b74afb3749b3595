"""Paraphrase files: validation with messages that name the file and the group, and the
draw that replaces a training instruction by a member of its group."""

import pytest
import torch
import yaml

from hybrid_vla_ros.schema import ConfigError
from hybrid_vla_ros.training.config import load_train_config
from hybrid_vla_ros.training.paraphrases import Paraphrases


def write(tmp_path, data, name='para.yaml'):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_draws_stay_in_the_group_and_follow_the_probability(tmp_path):
    para = Paraphrases.load(write(tmp_path, {'groups': {
        'lock': ['lock the door', ' please lock the door ', 'turn the lock down'],
        'unlock': ['unlock the door', 'turn the lock up']}}))
    assert para.groups['lock'][1] == 'please lock the door'   # trimmed
    assert para.group_of('unlock the door') == 'unlock' and para.group_of('open it') is None
    assert para.coverage(['lock the door', 'open the window', 'lock the door']) == (1, 2)
    texts = ['lock the door'] * 400 + ['open the window'] * 100
    gen = torch.Generator().manual_seed(0)
    drawn = para.sample(texts, 1.0, gen)
    assert set(drawn[:400]) == set(para.groups['lock'])       # every member, itself included
    assert drawn[400:] == texts[400:]                         # no group: unchanged
    half = para.sample(texts, 0.5, torch.Generator().manual_seed(1))
    changed = sum(a != b for a, b in zip(half[:400], texts[:400], strict=True))
    assert 80 < changed < 190        # p 0.5 of a draw, which lands on a new text 2 times in 3
    assert para.sample(texts, 0.0, gen) == texts
    again = para.sample(texts, 1.0, torch.Generator().manual_seed(0))
    assert again == drawn            # the generator alone decides the draw


@pytest.mark.parametrize('content, message', [
    ({'groups': {'a': ['x one', 'x two'], 'b': ['y one', 'x two']}},
     r"groups\.b: 'x two' is also in group 'a'; a phrasing may belong to one group only"),
    ({'groups': {'a': ['x one', '  ']}}, r'groups\.a\[1\]: an empty phrasing'),
    ({'groups': {'a': ['x one']}}, r'groups\.a: a group needs at least two phrasings'),
    ({'groups': {'a': ['x one', 'x one']}}, r"groups\.a: 'x one' is listed twice"),
    ({'groups': {'a': 'x one'}}, r"groups\.a: expected a list of strings, got 'x one'"),
    ({'groups': []}, r'groups: expected a mapping of group name -> list of phrasings'),
    ({'group': {'a': ['x', 'y']}}, r'unknown key\(s\) group; a paraphrase file has one key'),
    ('groups: [unclosed', r'not valid YAML'),
])
def test_bad_files_are_refused_naming_the_file_and_the_key(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(ConfigError, match=r'para\.yaml: ' + message):
        Paraphrases.load(path)


def test_coverage_of_nothing_is_refused(tmp_path):
    para = Paraphrases.load(write(tmp_path, {'groups': {'a': ['x one', 'x two']}}))
    with pytest.raises(ConfigError, match=r"none of the 2 instructions in the training data "
                                          r"is in a paraphrase group \(e.g. 'close it'\)"):
        para.require_coverage(['open it', 'close it'])
    assert para.require_coverage(['x two', 'y']).startswith(
        'paraphrases: 1 of 2 instructions have paraphrases (2 phrasings in 1 groups')


def test_training_config_finds_the_file_and_checks_the_probability(tmp_path):
    write(tmp_path, {'groups': {'a': ['x one', 'x two']}})
    cfg = tmp_path / 'train.yaml'
    cfg.write_text(yaml.safe_dump({'model': 'config/models/default.yaml',
                                   'data': {'paraphrases': 'para.yaml'}}))
    loaded = load_train_config(cfg)
    assert loaded.data.paraphrases == str(tmp_path / 'para.yaml')   # next to the YAML
    assert loaded.data.paraphrase_probability == 0.5
    cfg.write_text(yaml.safe_dump({'model': 'config/models/default.yaml',
                                   'data': {'paraphrases': 'nowhere.yaml'}}))
    with pytest.raises(ConfigError, match=r'data\.paraphrases: nowhere\.yaml not found'):
        load_train_config(cfg)
    cfg.write_text(yaml.safe_dump({'model': 'config/models/default.yaml',
                                   'data': {'paraphrase_probability': 1.5}}))
    with pytest.raises(ConfigError, match=r'data\.paraphrase_probability'):
        load_train_config(cfg)
