"""Training on a tiny dataset collected from the simulator: strategies, freezing, resume,
NaN guard, DDP, and the closed-loop evaluation command."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from hybrid_vla_ros.model import load_checkpoint
from hybrid_vla_ros.schema import ConfigError
from hybrid_vla_ros.training.config import load_train_config
from hybrid_vla_ros.training.trainer import Trainer

from conftest import REPO, process_state, spawned_workers, still_running_after

EXE_DIR = os.path.dirname(sys.executable)
TINY_MODEL = {
    'instruction_max_tokens': 12,
    'vision': {'type': 'cnn', 'channels': [8, 16, 16], 'dim': 32},
    'language': {'type': 'learned', 'buckets': 256, 'dim': 32, 'layers': 1, 'heads': 2},
    'fusion': {'type': 'transformer', 'dim': 32, 'layers': 1, 'heads': 2, 'readouts': 2},
    'decoder': {'type': 'mlp_chunk', 'hidden': 64, 'layers': 1},
    'action': {'chunk': 4},
}


@pytest.fixture(scope='module')
def collected(tmp_path_factory):
    """Two episodes each of two shared-scene tasks, 32x32 images, and a matching topic map."""
    from hybrid_vla_ros.sim.collect import collect
    root = tmp_path_factory.mktemp('demos')
    summary = collect(root / 'bags', tasks=['drawer-open', 'drawer-close'], episodes=2,
                      seed=0, image_size=32, progress=False)
    assert len(summary.recorded) == 4 and all(e.success for e in summary.recorded)
    topic_map = yaml.safe_load(open(f'{REPO}/config/data/metaworld.yaml'))
    topic_map.update(image_size=[32, 32], chunk=4)
    (root / 'map.yaml').write_text(yaml.safe_dump(topic_map))
    return root


@pytest.fixture(scope='module')
def trained(collected):
    """An exported checkpoint trained here with the hybrid strategy (the closed-loop, bag
    and collector tests below drive it); trained once per module, whatever runs first."""
    out = collected / 'run_policy'
    if not (out / 'best' / 'model.safetensors').is_file():
        cfg = load_train_config(write_config(collected, 'policy', strategy='hybrid', epochs=6))
        Trainer(cfg, [str(collected / 'bags')], out, progress=False,
                log=lambda *_: None).run()
    ckpt = out / 'best'
    if not (ckpt / 'onnx' / 'manifest.json').is_file():
        from hybrid_vla_ros.export.onnx_export import export_checkpoint
        export_checkpoint(ckpt, log=lambda *a: None)
    return ckpt


def write_config(root, name, **optim):
    base = {'strategy': 'hybrid', 'epochs': 1, 'batch_size': 16, 'lr': 1e-3,
            'warmup_steps': 2, 'log_every': 1, 'seed': 0}
    base.update(optim)
    cfg = {'model': TINY_MODEL,
           'data': {'topic_map': str(root / 'map.yaml'), 'val_fraction': 0.0,
                    'augment_shift': 2},
           'optim': base}
    path = root / f'{name}.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def records(out, event):
    lines = (out / 'metrics.jsonl').read_text().splitlines()
    return [r for r in map(json.loads, lines) if r['event'] == event]


@pytest.mark.parametrize('strategy', ['e2e', 'hybrid', 'staged'])
def test_each_strategy_lowers_the_loss_and_writes_a_checkpoint(collected, strategy):
    extra = {'staged_epochs': [1, 5, 1]} if strategy == 'staged' else {'epochs': 6}
    cfg = load_train_config(write_config(collected, strategy, strategy=strategy, **extra))
    out = collected / f'run_{strategy}'
    trainer = Trainer(cfg, [str(collected / 'bags')], out, progress=False, log=lambda *_: None)
    last_stage = trainer.stages[-1]
    before = trainer.validate(last_stage, None)['e2e']
    trainer.run()
    after = trainer.validate(last_stage, None)['e2e']
    assert after < 0.9 * before, (before, after)
    policy = load_checkpoint(out / 'last')
    assert policy.cfg.observation.proprio_dim == 4 and policy.cfg.action.dim == 4
    assert policy.cfg.normalization.action is not None
    assert (out / 'best' / 'model.safetensors').is_file()
    names = [s['stage'] for s in records(out, 'stage_end')]
    assert names == [s.name for s in trainer.stages]


def test_staged_stage_two_leaves_encoders_unchanged(collected):
    path = write_config(collected, 'staged_check', strategy='staged', staged_epochs=[1, 1, 0])
    cfg = load_train_config(path)
    cfg.model['loss'] = {'waypoint_weight': 1.0}   # its head learns with the composed system
    out = collected / 'run_staged_check'
    trainer = Trainer(cfg, [str(collected / 'bags')], out, progress=False, log=lambda *_: None)
    snapshots = {}
    original = trainer._run_stage

    def run_stage(stage):
        before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
        original(stage)
        snapshots[stage.name] = (before, {k: v.clone()
                                          for k, v in trainer.policy.state_dict().items()})

    trainer._run_stage = run_stage
    trainer.run()
    before, after = snapshots['compose']
    for key in before:
        same = torch.equal(before[key], after[key])
        if key.startswith(('vision.', 'language.', 'modular.')) and 'waypoint' not in key:
            assert same, f'{key} changed while frozen in stage 2'
    for part in ('fusion.', 'modular.waypoint_head.'):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part))
    assert records(out, 'train')[-1].get('waypoint') is not None
    before, after = snapshots['modular']
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('decoder.'))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith('vision.'))


def test_bench_train_times_each_variant_from_the_same_start(collected, tmp_path):
    from hybrid_vla_ros.benchmark.training_step import BASELINE, VARIANTS
    cfg = write_config(collected, 'bench', epochs=1)
    out = tmp_path / 'train_step.json'
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'bench-train', '--config', str(cfg),
                        '--data', str(collected / 'bags'), '--steps', '2', '--rounds', '2',
                        '--warmup', '1', '--threads', '1', '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result['variants']) == set(VARIANTS) and result['batch_size'] == 16
    for name, row in result['variants'].items():
        assert row['samples_per_s'] > 0 and len(row['samples_per_s_per_round']) == 2
        assert np.isfinite(row['first_loss']) and np.isfinite(row['last_loss'])
        assert name in r.stdout
        # Only the baseline runs torch's dropout (language, fusion and decoder have some).
        replaced = row['dropout_modules_replaced_by_nn_dropout']
        assert (replaced > 0) if name == BASELINE else (replaced == 0), (name, replaced)
    assert result['variants'][BASELINE]['speedup_over_baseline'] == 1.0
    # Bad settings end with one clear line.
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'bench-train', '--config', str(cfg),
                        '--data', str(collected / 'bags'), '--steps', '0', '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and '--steps (0)' in r.stderr and 'Traceback' not in r.stderr


def test_stop_after_epochs_cuts_a_run_short_on_its_schedule(collected):
    """`optim.stop_after_epochs` ends the run early while the learning rate follows the
    whole `epochs` schedule (how stage 1 of models/mt50 was trained); resumed with a later
    stop it continues from the saved step on the same schedule."""
    out = collected / 'run_stop_after'
    cut = write_config(collected, 'stop1', epochs=4, stop_after_epochs=1)
    messages = []
    Trainer(load_train_config(cut), [str(collected / 'bags')], out, progress=False,
            log=messages.append).run()
    one = records(out, 'stage_end')[-1]['step']
    said = next(m for m in messages if 'optim.stop_after_epochs' in m)
    assert f'{4 * one} steps (4 epochs x {one}), stopping after {one}' in said
    # Mid-schedule: the last rate is far above the cosine floor a 1-epoch run ends at.
    last_lr = records(out, 'train')[-1]['lr']
    assert last_lr > 0.5 * 1e-3
    further = write_config(collected, 'stop2', epochs=4, stop_after_epochs=2)
    Trainer(load_train_config(further), [str(collected / 'bags')], out, resume=True,
            progress=False, log=lambda *_: None).run()
    steps = [r['step'] for r in records(out, 'train')]
    assert steps == sorted(steps) and steps[-1] == 2 * one and steps.count(one) == 1
    staged = write_config(collected, 'stop_staged', strategy='staged', stop_after_epochs=1)
    with pytest.raises(ConfigError, match='optim.stop_after_epochs: only for one-stage runs'):
        load_train_config(staged)


def test_resume_continues_from_the_saved_step(collected):
    out = collected / 'run_resume'
    one = write_config(collected, 'resume1', epochs=1)
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(one), '--data',
                        str(collected / 'bags'), '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    steps_one = records(out, 'stage_end')[-1]['step']
    state = torch.load(out / 'last' / 'training_state.pt', weights_only=False)
    assert state['progress']['global_step'] == steps_one
    # Same config but with more epochs is a different run: refused with the section named.
    two = write_config(collected, 'resume2', epochs=2)
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(two), '--data',
                        str(collected / 'bags'), '--out', str(out), '--resume'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and '"optim" section differs' in r.stderr
    assert 'Traceback' not in r.stderr
    # Starting again into the same directory without --resume is refused too.
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(one), '--data',
                        str(collected / 'bags'), '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and '--resume' in r.stderr
    # Resuming the finished one-epoch run with its own config but a new epoch count in the
    # saved copy: continue for a second epoch from the saved step.
    saved = yaml.safe_load((out / 'train_config.yaml').read_text())
    saved['optim']['epochs'] = 2
    (out / 'train_config.yaml').write_text(yaml.safe_dump(saved))
    trainer = Trainer(load_train_config(two), [str(collected / 'bags')], out, resume=True,
                      progress=False, log=lambda *_: None)
    assert trainer.state['global_step'] == steps_one
    trainer.run()
    steps = [r['step'] for r in records(out, 'train')]
    assert steps == sorted(steps) and steps[-1] == 2 * steps_one
    assert steps.count(steps_one) == 1  # no step repeated after the resume
    # Resuming the finished run again (make train-default run a second time) trains
    # nothing, changes no weight and adds no stage_end record.
    ends, before = len(records(out, 'stage_end')), load_checkpoint(out / 'last').state_dict()
    messages = []
    Trainer(load_train_config(two), [str(collected / 'bags')], out, resume=True,
            progress=False, log=messages.append).run()
    assert any('already complete' in m for m in messages), messages
    assert len(records(out, 'stage_end')) == ends
    after = load_checkpoint(out / 'last').state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weight_average_is_what_best_keeps_and_resume_continues_it(collected):
    """optim.ema_decay: best/ holds the averaged weights, last/ the raw ones plus the
    average, and a resumed run keeps averaging from where it stopped."""
    out = collected / 'run_ema'
    one = write_config(collected, 'ema1', epochs=1, ema_decay=0.9)
    Trainer(load_train_config(one), [str(collected / 'bags')], out, progress=False,
            log=lambda *_: None).run()
    steps_one = records(out, 'stage_end')[-1]['step']
    state = torch.load(out / 'last' / 'training_state.pt', weights_only=False)
    assert state['ema']['updates'] == steps_one and state['ema']['decay'] == 0.9
    best = load_checkpoint(out / 'best')
    raw = load_checkpoint(out / 'last')
    trainable = [n for n, p in raw.named_parameters() if p.requires_grad]
    assert len(state['ema']['shadow']) == len(trainable)
    best_params, raw_params = dict(best.named_parameters()), dict(raw.named_parameters())
    # The one validation of a one-epoch run saved best/ from the average, not the raw weights.
    for name, avg in zip(trainable, state['ema']['shadow'], strict=True):
        assert torch.allclose(best_params[name], avg), name
    assert any(not torch.equal(best_params[n], raw_params[n]) for n in trainable)
    # Resumed for a second epoch: the average goes on counting steps, not starting over.
    saved = yaml.safe_load((out / 'train_config.yaml').read_text())
    saved['optim']['epochs'] = 2
    (out / 'train_config.yaml').write_text(yaml.safe_dump(saved))
    two = write_config(collected, 'ema2', epochs=2, ema_decay=0.9)
    Trainer(load_train_config(two), [str(collected / 'bags')], out, resume=True,
            progress=False, log=lambda *_: None).run()
    state = torch.load(out / 'last' / 'training_state.pt', weights_only=False)
    assert state['ema']['updates'] == 2 * steps_one


def test_weight_average_math_and_swap():
    from hybrid_vla_ros.training.weight_average import WeightAverage
    p = torch.nn.Parameter(torch.zeros(3))
    avg = WeightAverage([p], decay=0.5)
    values = []
    for v in (1.0, 2.0, 3.0):
        with torch.no_grad():
            p.fill_(v)
        avg.update()
        values.append(v)
    # Ramp: d = min(0.5, (1 + n) / (10 + n)) = 0.1, 0.18..., 0.25 for n = 0, 1, 2.
    expected = 0.0
    for n, v in enumerate(values):
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * v
    assert torch.allclose(avg.shadow[0], torch.full((3,), expected))
    with avg.swapped_in():
        assert torch.allclose(p.detach(), torch.full((3,), expected))
    assert torch.equal(p.detach(), torch.full((3,), 3.0))
    with pytest.raises(ValueError, match='does not match'):
        WeightAverage([torch.nn.Parameter(torch.zeros(2))], 0.5).load_state_dict(avg.state_dict())
    with pytest.raises(ValueError, match='decay'):
        WeightAverage([p], 1.0)


def test_init_from_starts_from_a_checkpoint_and_refuses_another_architecture(collected):
    source = collected / 'run_init_source'
    Trainer(load_train_config(write_config(collected, 'init_source', epochs=2)),
            [str(collected / 'bags')], source, progress=False, log=lambda *_: None).run()
    saved = load_checkpoint(source / 'last')
    cfg = load_train_config(write_config(collected, 'init_ft', epochs=1, lr=1e-4,
                                         init_from=str(source / 'last')))
    cfg.data.augment_shift = 0      # a fine-tuning run may change training-only settings
    cfg.model['loss'] = {'waypoint_weight': 1.0}
    trainer = Trainer(cfg, [str(collected / 'bags')], collected / 'run_init_ft',
                      progress=False, log=lambda *_: None)
    start = trainer.policy.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(start[key], value), f'{key} not taken from the checkpoint'
    assert trainer.policy.cfg.normalization == saved.cfg.normalization
    trainer.run()
    tuned = load_checkpoint(collected / 'run_init_ft' / 'last')
    assert any(not torch.equal(v, saved.state_dict()[k]) for k, v in tuned.state_dict().items())
    other = load_train_config(write_config(collected, 'init_other',
                                           init_from=str(source / 'last')))
    other.model = dict(TINY_MODEL, fusion=dict(TINY_MODEL['fusion'], layers=2))
    with pytest.raises(ConfigError, match=r'model\.fusion\.layers \(2 here, 1 in the checkpoint'):
        Trainer(other, [str(collected / 'bags')], collected / 'run_init_other',
                progress=False, log=lambda *_: None)
    # A setting that changes no weight (here the fusion's dropout; for the shipped MT50
    # model `language.pool`) warm-starts a variant from the trained weights, and says so.
    variant = load_train_config(write_config(collected, 'init_variant', epochs=1, lr=1e-4,
                                             init_from=str(source / 'last')))
    variant.model = dict(TINY_MODEL, fusion=dict(TINY_MODEL['fusion'], dropout=0.3))
    messages = []
    trainer = Trainer(variant, [str(collected / 'bags')], collected / 'run_init_variant',
                      progress=False, log=messages.append)
    start = trainer.policy.state_dict()
    assert all(torch.equal(start[k], v) for k, v in saved.state_dict().items())
    assert trainer.policy.cfg.to_mapping()['fusion']['dropout'] == 0.3
    assert any('model.fusion.dropout: 0.1 -> 0.3' in m for m in messages), messages
    missing = load_train_config(write_config(collected, 'init_missing',
                                             init_from=str(collected / 'nowhere')))
    with pytest.raises(ConfigError, match='nowhere: directory does not exist'):
        Trainer(missing, [str(collected / 'bags')], collected / 'run_init_missing',
                progress=False, log=lambda *_: None)
    # The command line's --init-from (how two_stage_finetune.yaml's second stage is run)
    # does the same for a YAML without optim.init_from, and is recorded in the run.
    plain = write_config(collected, 'init_cli', epochs=1, lr=1e-4)
    out = collected / 'run_init_cli'
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(plain), '--data',
                        str(collected / 'bags'), '--out', str(out), '--init-from',
                        str(source / 'last')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'weights and normalization from {source / "last"}' in r.stdout + r.stderr
    saved_cfg = yaml.safe_load((out / 'train_config.yaml').read_text())
    assert saved_cfg['optim']['init_from'] == str(source / 'last')
    assert load_checkpoint(out / 'last').cfg.normalization == saved.cfg.normalization
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(plain), '--data',
                        str(collected / 'bags'), '--out', str(collected / 'run_init_cli2'),
                        '--init-from', str(collected / 'nowhere')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and 'no such checkpoint directory' in r.stderr
    assert 'Traceback' not in r.stderr and not (collected / 'run_init_cli2').exists()


def test_proprio_noise_blurs_the_input_but_not_the_targets(collected):
    from hybrid_vla_ros.data.torch_data import collate
    from hybrid_vla_ros.model.losses import hybrid_objective
    from hybrid_vla_ros.training.trainer import prepare_batch, proprio_noise_scale
    cfg = load_train_config(write_config(collected, 'proprio_noise'))
    cfg.data.augment_proprio_noise = 0.5
    trainer = Trainer(cfg, [str(collected / 'bags')], collected / 'run_proprio_noise',
                      progress=False, log=lambda *_: None)
    policy = trainer.policy.eval()
    batch = collate([trainer.dataset.train[i] for i in range(len(trainer.dataset.train))])
    gen = torch.Generator().manual_seed(0)
    half = proprio_noise_scale(cfg.data, trainer.dataset.proprio_names)
    noisy = prepare_batch(batch, policy, None, 0, gen, training=True, proprio_scale=half)
    clean = prepare_batch(batch, policy, None, 0, gen, training=True, proprio_scale=None)
    assert 'proprio_input' not in clean and torch.equal(noisy['proprio'], batch['proprio'])
    z = (noisy['proprio_input'] - batch['proprio']) / policy.proprio_std
    assert 0.4 < float(z.std()) < 0.6 and abs(float(z.mean())) < 0.1
    with torch.no_grad():
        a, b = hybrid_objective(policy, noisy), hybrid_objective(policy, clean)
    assert float(a['e2e']) != float(b['e2e'])        # the network saw the noisy copy
    assert float(a['proprio']) == float(b['proprio'])  # targets stay the clean values
    validation = prepare_batch(batch, policy, None, 0, gen, training=False, proprio_scale=half)
    assert 'proprio_input' not in validation
    # Noise on x and y only: z and the gripper stay exact.
    cfg.data.augment_proprio_fields = ['ee_pose.position.x', 'ee_pose.position.y']
    scale = proprio_noise_scale(cfg.data, trainer.dataset.proprio_names)
    some = prepare_batch(batch, policy, None, 0, gen, training=True, proprio_scale=scale)
    moved = (some['proprio_input'] != batch['proprio']).all(dim=0).tolist()
    assert moved == [True, True, False, False], trainer.dataset.proprio_names
    cfg.data.augment_proprio_fields = ['ee_pose.position.w']
    with pytest.raises(ConfigError, match="'ee_pose.position.w' is not a proprioception "
                                          'field of this data; its fields are ee_pose'):
        proprio_noise_scale(cfg.data, trainer.dataset.proprio_names)


def test_non_finite_loss_stops_naming_the_step_and_keeps_last_checkpoint(collected):
    stages = [{'name': 'ok', 'epochs': 1, 'lambda_e2e': 1.0, 'lambda_modular': 0.0},
              {'name': 'explode', 'epochs': 2, 'lambda_e2e': 1.0, 'lambda_modular': 0.0,
               'lr_scale': 1e30}]
    path = write_config(collected, 'nan', stages=stages, grad_clip=0.0, warmup_steps=0)
    out = collected / 'run_nan'
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(path), '--data',
                        str(collected / 'bags'), '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stdout[-1000:] + r.stderr[-2000:]
    assert 'non-finite loss' in r.stderr and 'global step' in r.stderr
    assert 'drawer-' in r.stderr  # the episodes of the batch are named
    policy = load_checkpoint(out / 'last')
    assert all(torch.isfinite(p).all() for p in policy.parameters())


def test_bad_data_and_config_fail_clearly(collected, tmp_path):
    path = write_config(collected, 'bad')
    empty = tmp_path / 'empty'
    empty.mkdir()
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(path), '--data',
                        str(empty), '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'no usable episodes' in r.stderr
    assert 'Traceback' not in r.stderr
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'train', '--config', str(path), '--data',
                        str(tmp_path / 'missing'), '--out', str(tmp_path / 'o')],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'no such file or directory' in r.stderr
    bad = yaml.safe_load(path.read_text())
    bad['optim']['strategy'] = 'magic'
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="optim.strategy: 'magic' is not allowed"):
        load_train_config(path)


def test_torchrun_two_processes_end_with_identical_weights(collected):
    path = write_config(collected, 'ddp', epochs=1, batch_size=8)
    out = collected / 'run_ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([f'{EXE_DIR}/torchrun', '--standalone', '--nproc_per_node', '2', '-m',
                        'hybrid_vla_ros.cli', 'train', '--config', str(path), '--data',
                        str(collected / 'bags'), '--out', str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    (check,) = records(out, 'ddp_weights_checksum')
    assert len(check['per_rank']) == 2 and len(set(check['per_rank'])) == 1
    load_checkpoint(out / 'last')


def test_eval_sim_runs_the_exported_policy_closed_loop(collected, trained):
    ckpt = trained
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'export', '--checkpoint', str(ckpt)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'eval-sim', '--checkpoint', str(ckpt),
                        '--tasks', 'drawer-open', 'drawer-close', '--episodes', '1',
                        '--out', str(collected / 'eval')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((collected / 'eval' / 'eval_sim.json').read_text())
    assert set(doc['tasks']) == {'drawer-open', 'drawer-close'}
    for row in doc['tasks'].values():
        assert row['expert']['success_rate'] == 1.0
        for split in ('train', 'held_out'):
            (ep,) = row[split]['episodes']
            assert ep['steps'] > 0 and isinstance(ep['success'], bool)
    held = doc['tasks']['drawer-open']['held_out']['episodes'][0]['instruction']
    from hybrid_vla_ros.sim.tasks import get_task
    assert held in get_task('metaworld', 'drawer-open').held_out
    assert '| drawer-open |' in (collected / 'eval' / 'eval_sim.md').read_text()
    # Two worker processes run the same episodes: identical outcomes, task order kept.
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'eval-sim', '--checkpoint', str(ckpt),
                        '--tasks', 'drawer-open', 'drawer-close', '--episodes', '1',
                        '--workers', '2', '--out', str(collected / 'eval_workers')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    parallel = json.loads((collected / 'eval_workers' / 'eval_sim.json').read_text())
    assert list(parallel['tasks']) == list(doc['tasks'])
    for name, row in doc['tasks'].items():
        for split, res in row.items():
            got = parallel['tasks'][name][split]['episodes']
            assert [(e['success'], e['steps']) for e in got] == \
                [(e['success'], e['steps']) for e in res['episodes']], (name, split)
    assert parallel['backend'] == doc['backend']
    # From a jittered hand start: the report says so, the expert still solves it.
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'eval-sim', '--checkpoint', str(ckpt),
                        '--tasks', 'drawer-open', '--episodes', '1', '--start-jitter', '0.05',
                        '--out', str(collected / 'eval_jitter')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    jittered = json.loads((collected / 'eval_jitter' / 'eval_sim.json').read_text())
    assert jittered['start_jitter'] == 0.05 and doc['start_jitter'] == 0.0
    assert jittered['tasks']['drawer-open']['expert']['success_rate'] == 1.0
    table = (collected / 'eval_jitter' / 'eval_sim.md').read_text()
    assert 'hand start jittered up to 5 cm' in table
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'eval-sim', '--checkpoint', str(ckpt),
                        '--start-jitter', '0.5'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and '--start-jitter' in r.stderr and 'Traceback' not in r.stderr


def _start_four_task_eval(ckpt, out, *args, **popen_kwargs) -> subprocess.Popen:
    """`hybrid-vla eval-sim` on drawer-open/-close and window-open/-close without the expert,
    started in the background with unbuffered, piped text output."""
    return subprocess.Popen(
        [f'{EXE_DIR}/hybrid-vla', 'eval-sim', '--checkpoint', str(ckpt), '--tasks',
         'drawer-open', 'drawer-close', 'window-open', 'window-close', '--no-expert',
         '--out', str(out), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, 'PYTHONUNBUFFERED': '1'}, **popen_kwargs)


def test_eval_sim_interrupted_keeps_the_finished_tasks(collected, trained):
    """Ctrl-C during a long evaluation: the tasks already finished are written, exit 130."""
    ckpt = trained
    out = collected / 'eval_interrupted'
    proc = _start_four_task_eval(
        ckpt, out, '--episodes', '2',
        # A background job may inherit SIGINT ignored; a terminal's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith('drawer-open'):
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    assert 'interrupted after' in stderr
    doc = json.loads((out / 'eval_sim.json').read_text())
    assert doc['interrupted'] is True
    assert list(doc['tasks'])[0] == 'drawer-open' and len(doc['tasks']) < 4
    assert doc['tasks_requested'] == ['drawer-open', 'drawer-close', 'window-open',
                                      'window-close']
    assert 'Interrupted' in (out / 'eval_sim.md').read_text()


def test_eval_sim_worker_killed_fails_clearly_and_keeps_finished_tasks(collected, trained):
    """A worker process killed mid-task (as by the out-of-memory killer) ends the run with a
    message naming the task and the signal, instead of waiting for it forever."""
    ckpt = trained
    out = collected / 'eval_worker_killed'
    proc = _start_four_task_eval(ckpt, out, '--episodes', '3', '--workers', '2')
    try:
        # After the first task's line both workers hold a task (two of four are left).
        for line in proc.stdout:
            if line.startswith(('drawer-open', 'drawer-close')):
                break
        workers = spawned_workers(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stderr[-2000:]
    assert f'evaluation worker process {workers[0]} died while evaluating task' in stderr
    assert 'SIGKILL' in stderr and 'Traceback' not in stderr
    doc = json.loads((out / 'eval_sim.json').read_text())
    assert 'SIGKILL' in doc['failed'] and 1 <= len(doc['tasks']) < 4
    assert 'Failed:' in (out / 'eval_sim.md').read_text()
    for pid in workers:  # the surviving worker was terminated, not left running
        assert process_state(pid) in (None, 'Z'), pid


def test_eval_sim_workers_end_when_their_parent_is_killed(collected, trained):
    """A parent ended by a signal it cannot handle (SIGKILL; SIGTERM likewise skips the
    clean-up) leaves no worker evaluating for nobody: each notices at its next episode."""
    import time
    ckpt = trained
    # Enough episodes that, left alone, the workers would run far past the deadline below.
    proc = _start_four_task_eval(ckpt, collected / 'eval_parent_killed', '--episodes', '60',
                                 '--workers', '2')
    try:
        workers, deadline = [], time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = spawned_workers(proc.pid)
        assert len(workers) == 2, workers
        time.sleep(5)  # let them load the policy and take a task each
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    left = still_running_after(workers)
    assert not left, f'workers {left} still running after their parent was killed'


def test_collect_with_a_policy_driving_records_the_experts_labels(trained, tmp_path):
    """DAgger collection: the trained policy's actions are executed, the bag records the
    expert's action for every state, the share of policy steps follows --policy-share, and a
    policy that cannot drive this recording is refused with one clear line."""
    from hybrid_vla_ros.sim import make_env
    from hybrid_vla_ros.sim.collect import PolicyDriver, record_episode
    from test_sim import read_bag
    ckpt = trained
    driver = PolicyDriver(ckpt, share=1.0)
    env = make_env('metaworld', 'drawer-open', seed=1000, image_size=driver.image_size,
                   cameras=driver.cameras)
    experts, proposals, executed = [], [], []
    expert, act, step = env.expert_action, driver.action, env.step
    env.expert_action = lambda obs=None: experts.append(expert(obs)) or experts[-1]
    driver.action = lambda e, obs: proposals.append(act(e, obs)) or proposals[-1]
    env.step = lambda action: executed.append(np.array(action)) or step(action)
    try:
        result = record_episode(env, 1000, tmp_path / 'driven', driver=driver)
    finally:
        env.close()
    assert len(experts) == len(proposals) == len(executed) == result.steps > 0
    assert all(p is not None for p in proposals)
    np.testing.assert_array_equal(np.array(executed), np.array(proposals))  # the policy drove
    assert np.abs(np.array(executed) - np.array(experts)).max() > 0.05
    _, topics, custom = read_bag(result.path)
    recorded = np.array([[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z]
                         for _, m in topics['ee_command']])
    # The recorded command is the expert's action (in m/s): the same direction everywhere.
    e = np.array(experts)[:, :3]
    moving = (np.linalg.norm(recorded, axis=1) > 1e-9) & (np.linalg.norm(e, axis=1) > 1e-9)
    cos = np.sum(recorded * e, 1)[moving] / (np.linalg.norm(recorded, axis=1)[moving] *
                                            np.linalg.norm(e, axis=1)[moving])
    assert moving.sum() > 10 and np.all(cos > 1 - 1e-6)
    assert custom['hybrid_vla.driver_policy'] == str(ckpt)
    assert custom['hybrid_vla.driver_steps'] == str(result.steps)
    # Half the steps on average, drawn from the episode seed: the same again.
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'collect', '--episodes', '1', '--seed',
                        '1000', '--tasks', 'drawer-open', '--policy', str(ckpt),
                        '--policy-share', '0.5', '--quiet', '--out', str(tmp_path / 'half')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'policy success' in r.stdout and 'driven by' in r.stdout
    _, topics, custom = read_bag(tmp_path / 'half' / 'drawer-open_1000')
    assert custom['hybrid_vla.driver_share'] == '0.5'
    assert 0 < int(custom['hybrid_vla.driver_steps']) < len(topics['ee_command'])
    for args, needle in ((['--policy', str(ckpt), '--image-size', '96'], '--image-size'),
                         (['--policy', str(ckpt), '--cameras', 'corner'], '--cameras'),
                         (['--policy', str(tmp_path / 'nowhere')], 'nowhere'),
                         (['--policy-share', '0.5'], '--policy-share'),
                         (['--policy', str(ckpt), '--policy-share', '0'], '--policy-share')):
        r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'collect', '--episodes', '1', '--tasks',
                            'drawer-open', '--quiet', '--out', str(tmp_path / 'bad'), *args],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 2 and needle in r.stderr and 'Traceback' not in r.stderr, \
            (args, r.stderr[-2000:])


def test_eval_bag_reads_bags_the_way_the_checkpoint_was_trained(collected, trained):
    """A trained checkpoint embeds its topic map: eval-bag needs no --topic-map."""
    ckpt = trained
    embedded = yaml.safe_load((ckpt / 'config.yaml').read_text())['training']['topic_map']
    assert embedded['image_size'] == [32, 32] and embedded['chunk'] == 4
    out = collected / 'eval_bag'
    r = subprocess.run([f'{EXE_DIR}/hybrid-vla', 'eval-bag', '--checkpoint', str(ckpt),
                        '--bags', str(collected / 'bags'), '--out', str(out),
                        '--input-reliance'],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((out / 'eval_bag.json').read_text())
    assert len(doc['episodes']) == 4 and doc['skipped'] == []
    reliance = doc['input_reliance']
    assert list(reliance) == ['recorded inputs', 'proprio from step 0', 'images from step 0']
    assert reliance['recorded inputs'] == doc['overall']['summary']['next_action_mae_normalized']
    assert '## Input reliance' in (out / 'report.md').read_text()
    assert 'input reliance: proprio from step 0' in r.stdout
    # Freezing an input feeds step 0's value at every step: step 0 itself is unchanged,
    # later steps are not.
    from hybrid_vla_ros.data.episode import load_episode
    from hybrid_vla_ros.evaluation.bag_eval import predict_episode
    from hybrid_vla_ros.inference import load_backend
    from hybrid_vla_ros.data.topic_map import parse_topic_map
    backend = load_backend(ckpt, 'onnxruntime', threads=1)
    bag = sorted((collected / 'bags').iterdir())[0]
    ep = load_episode(bag, parse_topic_map(embedded))
    normal = predict_episode(backend, ep, batch=8)
    for what in ('proprio', 'images'):
        frozen = predict_episode(backend, ep, batch=8, freeze=what)
        assert np.allclose(frozen[0], normal[0], atol=1e-5), what
        assert not np.allclose(frozen[1:], normal[1:], atol=1e-4), what
    assert doc['action_names'] == ['ee_command.linear.x', 'ee_command.linear.y',
                                   'ee_command.linear.z', 'gripper_command.data']
    # A trained policy tracks its own demonstrations far better than predicting zero.
    for name, m in doc['overall']['next_action'].items():
        assert m['mae_normalized'] < 1.0, (name, m)


def test_drop_failed_leaves_out_failed_demonstrations(collected, tmp_path):
    """A bag whose metadata says the expert failed is left out with data.drop_failed, and
    named in the summary; without the option it is trained on."""
    import shutil

    from hybrid_vla_ros.data.dataset import EpisodeDataset
    bags = tmp_path / 'bags'
    shutil.copytree(collected / 'bags', bags)
    failed = sorted(bags.iterdir())[0]
    meta = failed / 'metadata.yaml'
    text = meta.read_text()
    assert "hybrid_vla.success: 'true'" in text
    meta.write_text(text.replace("hybrid_vla.success: 'true'", "hybrid_vla.success: 'false'"))
    kept = EpisodeDataset(bags, collected / 'map.yaml', val_fraction=0.0)
    dropped = EpisodeDataset(bags, collected / 'map.yaml', val_fraction=0.0, drop_failed=True)
    assert len(kept.episodes) == 4 and len(dropped.episodes) == 3
    assert dropped.summary.failed == [str(failed)]
    assert f'1 failed demonstrations left out (drop_failed): {failed.name}' in str(
        dropped.summary)
    # A failed policy-driven (DAgger) episode stays: its commands are the expert's labels
    # of the states the policy reached.
    driven = sorted(bags.iterdir())[1]
    meta = driven / 'metadata.yaml'
    text = meta.read_text().replace("hybrid_vla.success: 'true'",
                                    "hybrid_vla.success: 'false'\n    "
                                    "hybrid_vla.driver_policy: models/mt50")
    meta.write_text(text)
    dagger = EpisodeDataset(bags, collected / 'map.yaml', val_fraction=0.0, drop_failed=True)
    assert len(dagger.episodes) == 3 and dagger.summary.failed == [str(failed)]
    assert any(e.path == str(driven) and e.policy_driven and e.success is False
               for e in dagger.episodes)


def test_paraphrases_change_the_words_read_in_training_only(collected, tmp_path):
    """With data.paraphrases, training samples read a drawn member of their instruction's
    group (the group keeps its contrastive identity); validation keeps the recorded words;
    a whole run trains with them and logs how much of the data the file covers."""
    from hybrid_vla_ros.data.torch_data import collate
    from hybrid_vla_ros.training.trainer import prepare_batch
    from hybrid_vla_ros.data.dataset import EpisodeDataset
    texts = EpisodeDataset([str(collected / 'bags')], str(collected / 'map.yaml'),
                           val_fraction=0.0, progress=False).instructions
    opening = [t for t in texts if 'close' not in t and 'shut' not in t]
    assert opening and len(opening) < len(texts), texts
    new = ['please pull the drawer open', 'get the drawer open', 'slide the drawer out']
    (tmp_path / 'para.yaml').write_text(yaml.safe_dump(
        {'groups': {'drawer-open': opening + new}}))
    path = write_config(collected, 'paraphrased', epochs=1)
    cfg_map = yaml.safe_load(path.read_text())
    cfg_map['data'].update(paraphrases=str(tmp_path / 'para.yaml'),
                           paraphrase_probability=1.0)
    path.write_text(yaml.safe_dump(cfg_map))
    cfg = load_train_config(path)
    lines = []
    trainer = Trainer(cfg, [str(collected / 'bags')], tmp_path / 'run', progress=False,
                      log=lines.append)
    assert any(f'paraphrases: {len(opening)} of {len(texts)} instructions have paraphrases'
               in line for line in lines), lines
    batch = collate([trainer.dataset.train[i] for i in range(len(trainer.dataset.train))])
    gen = torch.Generator().manual_seed(0)
    out = prepare_batch(batch, trainer.policy, None, 0, gen, training=True,
                        paraphrases=trainer.paraphrases, paraphrase_probability=1.0)
    for before, after in zip(batch['instruction'], out['instruction'], strict=True):
        if before in opening:
            assert after in opening + new
        else:
            assert after == before             # not in any group: the recorded words
    assert set(out['instruction']) & set(new)  # some samples read a new phrasing
    assert torch.equal(out['instruction_group'], batch['instruction_group'])
    ids, _ = trainer.policy.tokenize(out['instruction'])
    assert torch.equal(out['token_ids'], ids)  # the network reads the drawn words
    kept = prepare_batch(batch, trainer.policy, None, 0, gen, training=False,
                         paraphrases=trainer.paraphrases, paraphrase_probability=1.0)
    assert kept['instruction'] == batch['instruction']
    trainer.run()
    assert (tmp_path / 'run' / 'best' / 'model.safetensors').is_file()
    # A file written for other data matches nothing: refused, not silently ignored.
    (tmp_path / 'other.yaml').write_text(yaml.safe_dump(
        {'groups': {'lock': ['lock the door', 'turn the lock lever down']}}))
    cfg.data.paraphrases = str(tmp_path / 'other.yaml')
    with pytest.raises(ConfigError, match=r"other\.yaml: none of the \d+ instructions in the "
                                          r"training data is in a paraphrase group"):
        Trainer(cfg, [str(collected / 'bags')], tmp_path / 'run2', progress=False,
                log=lambda *_: None)


def test_episode_weights_choose_how_often_training_reads_each_episode(collected, tmp_path):
    """data.episode_weights: weight 0 leaves a task out, weight 3 reads an episode three
    times as often, the epoch is the weighted sample count, the draw repeats per (seed,
    epoch), and a whole run trains on it; a rule that matches nothing, or names nothing,
    is refused with its key."""
    from hybrid_vla_ros.training.episode_weights import WeightedEpochSampler
    path = write_config(collected, 'weighted', epochs=1)
    cfg_map = yaml.safe_load(path.read_text())
    cfg_map['data']['episode_weights'] = [{'task': 'drawer-close', 'weight': 0},
                                          {'path': '*/drawer-open_1', 'weight': 3}]
    path.write_text(yaml.safe_dump(cfg_map))
    lines = []
    trainer = Trainer(load_train_config(path), [str(collected / 'bags')], tmp_path / 'run',
                      progress=False, log=lines.append)
    episodes = [trainer.dataset.episodes[i] for i in trainer.dataset.train_episodes]
    lengths = {Path(e.path).name: len(e) for e in episodes}
    epoch = lengths['drawer-open_0'] + 3 * lengths['drawer-open_1']
    assert any(f'2 episodes left out, 1 reweighted; an epoch is {epoch} samples' in line
               for line in lines), lines
    sampler = WeightedEpochSampler(trainer.sample_weights, seed=0)
    sampler.set_epoch(0)
    drawn = list(sampler)
    assert len(drawn) == epoch and list(sampler) == drawn
    sampler.set_epoch(1)
    assert list(sampler) != drawn
    names = [Path(trainer.dataset.episodes[trainer.dataset.train[i]['episode']].path).name
             for i in drawn]
    assert 'drawer-close_0' not in names and 'drawer-close_1' not in names
    per_sample = {n: names.count(n) / lengths[n] for n in ('drawer-open_0', 'drawer-open_1')}
    assert 2.0 < per_sample['drawer-open_1'] / per_sample['drawer-open_0'] < 4.5, per_sample
    # Two ranks split one draw between them.
    halves = [WeightedEpochSampler(trainer.sample_weights, seed=0, rank=r, world_size=2)
              for r in (0, 1)]
    assert [len(h) for h in halves] == [epoch // 2] * 2
    trainer.run()
    (end,) = records(tmp_path / 'run', 'stage_end')
    assert end['step'] == epoch // 16          # batch 16, the last partial batch dropped
    cfg_map['data']['episode_weights'] = [{'task': 'drawer-slam', 'weight': 2}]
    path.write_text(yaml.safe_dump(cfg_map))
    with pytest.raises(ConfigError, match=r'data.episode_weights\[0\].*matches no training '
                                          r'episode.*drawer-close, drawer-open'):
        Trainer(load_train_config(path), [str(collected / 'bags')], tmp_path / 'run2',
                progress=False, log=lambda *_: None)
    cfg_map['data']['episode_weights'] = [{'weight': 2}]
    path.write_text(yaml.safe_dump(cfg_map))
    with pytest.raises(ConfigError, match=r'data.episode_weights\[0\]: give `path`'):
        load_train_config(path)
