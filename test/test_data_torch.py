"""The torch adapter: batches from real bags feed the hybrid objective."""

import copy
import subprocess
import sys

import torch

from hybrid_vla_ros.data import EpisodeDataset, parse_topic_map
from hybrid_vla_ros.data.torch_data import collate, make_loader
from hybrid_vla_ros.model import build_policy, hybrid_objective, parse_model_config

from model_configs import tiny_mapping
from test_data_bags import METAWORLD_MAP, write_episode


def test_data_package_imports_neither_torch_nor_rclpy():
    code = ('import sys, hybrid_vla_ros.data; '
            'print(any(m == "torch" or m.startswith("rclpy") for m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == 'False'


def test_collated_batch_trains_a_policy(tmp_path):
    mapping = copy.deepcopy(METAWORLD_MAP)
    mapping.update(image_size=[32, 32], chunk=5)
    for i, text in enumerate(['open the drawer', 'close the drawer', 'open the drawer']):
        write_episode(tmp_path / f'ep{i}', steps=6, image_size=(32, 32),
                      instructions={0: text})
    ds = EpisodeDataset(tmp_path, parse_topic_map(mapping), val_fraction=0.34)

    batch = next(iter(make_loader(ds.train, batch_size=6, seed=1)))
    assert batch['images'].shape == (6, 1, 32, 32, 3) and batch['images'].dtype == torch.uint8
    assert batch['proprio'].shape == (6, 4) and batch['proprio'].dtype == torch.float32
    assert batch['actions'].shape == (6, 5, 4) and batch['action_valid'].dtype == torch.bool
    assert batch['instruction_group'].dtype == torch.int64
    assert len(batch['instruction']) == 6 and isinstance(batch['instruction'][0], str)

    model = tiny_mapping(proprio=4, action=4, chunk=5)
    model['observation']['cameras'] = [{'name': 'front', 'height': 32, 'width': 32}]
    model['loss']['privileged_dim'] = 0
    model['normalization'] = ds.normalization()
    policy = build_policy(parse_model_config(model))
    batch['token_ids'], batch['mask'] = policy.tokenize(batch['instruction'])
    terms = hybrid_objective(policy, batch)
    assert torch.isfinite(terms['loss']) and 'align' in terms
    terms['loss'].backward()


def test_collate_of_single_samples(tmp_path):
    write_episode(tmp_path / 'ep', steps=3)
    ds = EpisodeDataset(tmp_path, parse_topic_map(METAWORLD_MAP))
    batch = collate([ds[0], ds[2]])
    assert batch['step'].tolist() == [0, 2] and batch['action_valid'][1].tolist() == [
        True, False, False, False]
