"""`hybrid-vla data-info` (called directly: the CLI wires it through COMMAND_MODULES)."""

import argparse

from hybrid_vla_ros.data.commands import data_info

from conftest import REPO
from test_data_bags import write_arm_episode, write_episode


def test_list_topics_shows_types_counts_and_joint_names(tmp_path, capsys):
    write_episode(tmp_path / 'ep', steps=3)
    write_arm_episode(tmp_path / 'arm', steps=2)
    data_info(argparse.Namespace(paths=[str(tmp_path)], list_topics=True, topic_map=None))
    out = capsys.readouterr().out
    assert 'hybrid_vla.task: drawer-open' in out
    assert 'sensor_msgs/msg/Image' in out and 'joints: j0, j1, gripper' in out
    assert 'joints: j3, j2, j1, j0' in out


def test_loading_prints_layout_split_and_statistics(tmp_path, capsys):
    for i in range(3):
        write_episode(tmp_path / f'ep{i}', steps=4, image_size=(128, 128))
    data_info(argparse.Namespace(paths=[str(tmp_path)], list_topics=False, val_fraction=0.3,
                                 topic_map=f'{REPO}/config/data/metaworld.yaml', seed=0,
                                 cache_dir=None))
    out = capsys.readouterr().out
    assert '3 episodes loaded' in out and 'samples        12 (train 8, validation 4' in out
    assert 'P=4: ee_pose.position.x' in out and 'K=8 x A=4' in out
    assert 'action mean' in out and 'success        3/3 episodes' in out
