"""Chunk scheduling: execute-then-replan and temporal ensembling."""

import numpy as np
import pytest

from hybrid_vla_ros.inference.scheduling import ChunkScheduler


def chunk(start, k=4, a=2):
    return np.stack([np.full(a, start + i, dtype=np.float64) for i in range(k)])


def test_replan_executes_k_steps_then_asks_again():
    s = ChunkScheduler('replan', chunk=4, replan_every=2)
    assert s.wants_chunk(0)
    s.add_chunk(chunk(10), tick=0)
    assert s.action(0)[0] == 10 and not s.wants_chunk(1)
    assert s.action(1)[0] == 11 and s.wants_chunk(2)
    s.add_chunk(chunk(20), tick=2)  # replaces the rest of the old chunk
    assert s.action(2)[0] == 20 and s.action(3)[0] == 21


def test_replan_runs_dry_and_holds():
    s = ChunkScheduler('replan', chunk=2, replan_every=2)
    s.add_chunk(chunk(0, k=2), tick=5)
    assert s.action(5)[0] == 0 and s.action(6)[0] == 1
    assert s.action(7) is None
    # A late chunk (computed for tick 6 while 6 was executing) only covers what is left.
    s.add_chunk(chunk(100, k=2), tick=7)
    assert s.action(8)[0] == 101


def test_ensemble_weights_old_predictions_more():
    s = ChunkScheduler('ensemble', chunk=3, ensemble_decay=0.5)
    s.add_chunk(chunk(0, k=3), tick=0)      # predicts 0, 1, 2 for ticks 0..2
    assert s.action(0)[0] == 0
    s.add_chunk(chunk(10, k=3), tick=1)     # predicts 10, 11, 12 for ticks 1..3
    w = np.exp(-0.5 * np.arange(2))
    assert s.action(1)[0] == pytest.approx((1 * w[0] + 10 * w[1]) / w.sum())
    assert s.wants_chunk(2)


def test_reset_flushes_everything():
    s = ChunkScheduler('replan', chunk=4, replan_every=4)
    s.add_chunk(chunk(0), tick=0)
    s.reset()
    assert s.action(0) is None and s.wants_chunk(1) and s.queued == 0


def test_bad_settings_and_shapes():
    with pytest.raises(ValueError, match='mode'):
        ChunkScheduler('magic')
    with pytest.raises(ValueError, match='replan_every'):
        ChunkScheduler('replan', chunk=4, replan_every=5)
    with pytest.raises(ValueError, match=r'\(4, A\) chunk'):
        ChunkScheduler('replan', chunk=4).add_chunk(np.zeros((3, 2)), 0)


def test_simulator_schedules_chunks_as_the_parameter_file_says(tmp_path):
    """eval-sim and policy-driven collection schedule chunks with the policy node's own
    parameters (its ROS 2 parameter file); a command-line value overrides one of them."""
    from hybrid_vla_ros.schema import ConfigError
    from hybrid_vla_ros.sim.policy_step import sim_control_settings
    params = tmp_path / 'policy.yaml'
    params.write_text('/**/policy:\n  ros__parameters:\n    scheduler: ensemble\n'
                      '    replan_every: 2\n    ensemble_decay: 0.3\n')
    s = sim_control_settings(params)
    assert (s.scheduler, s.replan_every, s.ensemble_decay) == ('ensemble', 2, 0.3)
    s = sim_control_settings(params, scheduler='replan', replan_every=3)
    assert (s.scheduler, s.replan_every, s.ensemble_decay) == ('replan', 3, 0.3)
    # A file that does not set them gets the node's defaults.
    params.write_text('/**/policy:\n  ros__parameters:\n    control_rate: 20.0\n')
    s = sim_control_settings(params)
    from hybrid_vla_ros.ros.parameters import POLICY_PARAMS
    node_defaults = {p.name: p.default for p in POLICY_PARAMS}
    assert (s.scheduler, s.replan_every, s.ensemble_decay) == (
        node_defaults['scheduler'], node_defaults['replan_every'],
        node_defaults['ensemble_decay']) == ('replan', 4, 0.1)
    params.write_text('/**/policy:\n  ros__parameters:\n    replan_every: two\n')
    with pytest.raises(ConfigError, match=r'policy\.yaml: policy scheduling parameters .*'
                                          r"invalid literal for int\(\) .*'two'"):
        sim_control_settings(params)
