"""Topic-map configuration: shipped maps validate, errors name the key path."""

import copy

import pytest

from hybrid_vla_ros.data import load_topic_map, parse_topic_map
from hybrid_vla_ros.schema import ConfigError

from conftest import REPO
from test_data_bags import METAWORLD_MAP


def _error(mapping):
    with pytest.raises(ConfigError) as info:
        parse_topic_map(mapping)
    return str(info.value)


def test_shipped_metaworld_map_matches_the_contract():
    tm = load_topic_map(f'{REPO}/config/data/metaworld.yaml')
    assert tm.cameras == {'front': 'front/image_raw'}
    assert [(s.topic, s.field, s.joints) for s in tm.proprio] == [
        ('ee_pose', 'position', None), ('joint_states', None, ['gripper'])]
    assert [(s.topic, s.field) for s in tm.action] == [('ee_command', 'linear'),
                                                        ('gripper_command', 'data')]
    assert tm.instruction.topic == 'instruction' and tm.instruction.text is None
    assert tm.image_size == [128, 128] and tm.chunk == 8


def test_shipped_arm_map_says_joint_names_once():
    tm = load_topic_map(f'{REPO}/config/data/arm.yaml')
    assert tm.proprio[0].topic == 'joint_states' and tm.action[0].topic == 'joint_command'
    assert tm.proprio[0].joints == tm.action[0].joints == [
        'shoulder_pan', 'shoulder_lift', 'elbow', 'wrist']


def test_round_trip_and_digest_changes_with_content():
    tm = parse_topic_map(METAWORLD_MAP)
    again = parse_topic_map(tm.to_mapping())
    assert again == tm and again.digest() == tm.digest()
    other = copy.deepcopy(METAWORLD_MAP)
    other['image_size'] = [32, 32]
    assert parse_topic_map(other).digest() != tm.digest()


@pytest.mark.parametrize('change, expected', [
    (lambda m: m.update(camera={'front': 'x'}), 'topic_map.camera: unknown key'),
    (lambda m: m.pop('action'), 'topic_map.action: required key is missing'),
    (lambda m: m.update(action=[]), 'topic_map.action: list at least one'),
    (lambda m: m.update(cameras={}), 'topic_map.cameras: name at least one camera'),
    (lambda m: m['proprio'][0].update(field='twist'),
     "topic_map.proprio[0].field: 'twist' is not allowed"),
    (lambda m: m['proprio'][1].update(joints=['a', 'a']), 'topic_map.proprio[1].joints'),
    (lambda m: m['action'][0].update(indices=[-1]), 'topic_map.action[0].indices'),
    (lambda m: m.update(instruction={'topic': 'i', 'text': 't'}),
     'topic_map.instruction: give exactly one'),
    (lambda m: m.update(instruction={}), 'topic_map.instruction: give exactly one'),
    (lambda m: m.update(image_size=[64]), 'topic_map.image_size: expected [height, width]'),
    (lambda m: m.update(chunk=0), 'topic_map.chunk: must be >= 1'),
    (lambda m: m.update(stamps='wall'), "topic_map.stamps: 'wall' is not allowed"),
    (lambda m: m['cameras'].update(front=3), 'topic_map.cameras.front'),
])
def test_errors_name_the_key_path(change, expected):
    mapping = copy.deepcopy(METAWORLD_MAP)
    change(mapping)
    assert expected in _error(mapping)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / 'map.yaml'
    path.write_text('cameras: {front: image}\naction: [{topic: cmd}]\n')
    with pytest.raises(ConfigError) as info:
        load_topic_map(path)
    assert str(path) in str(info.value) and 'topic_map.instruction' in str(info.value)


def test_fixed_text_instruction_and_nested_topic_map_key(tmp_path):
    path = tmp_path / 'train.yaml'
    path.write_text('topic_map:\n  cameras: {wrist: wrist/image}\n'
                    '  action: [{topic: cmd, field: data}]\n'
                    '  instruction: {text: pick up the cube}\n')
    tm = load_topic_map(path)
    assert tm.instruction.text == 'pick up the cube' and tm.camera_names == ['wrist']
