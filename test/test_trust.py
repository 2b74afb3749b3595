"""The trust rules as functions: two-clock staleness, clock skew, runtime loosening."""

import pytest

from hybrid_vla_ros.inference.safety import loosening
from hybrid_vla_ros.ros.trust import judge_input


def test_fresh_input_passes():
    assert judge_input('joint_states', 99.95, 99.96, 100.0, 0.25, 0.05).ok


def test_a_stamp_ahead_of_the_clock_is_skew_whatever_the_receive_time():
    verdict = judge_input('joint_states', 110.0, 100.0, 100.0, 0.25, 0.05)
    assert not verdict.ok and verdict.skewed
    assert 'clock skew: joint_states is stamped 10.000 s ahead' in verdict.reason
    # Within the tolerance it is fine (clocks are never identical).
    assert judge_input('joint_states', 100.04, 100.0, 100.0, 0.25, 0.05).ok


def test_stale_by_stamp_or_by_receive_time():
    by_stamp = judge_input('ee_pose', 99.0, 99.99, 100.0, 0.25, 0.05)
    assert not by_stamp.ok and not by_stamp.skewed and 'stamped 1.000 s ago' in by_stamp.reason
    # A stamp that still looks fresh (a clock slightly ahead) does not hide that nothing
    # arrived for a second: the receive time runs out.
    by_receive = judge_input('ee_pose', 100.03, 99.0, 100.0, 0.25, 0.05)
    assert not by_receive.ok and 'nothing received for 1.000 s' in by_receive.reason
    # No stamp (zero): the receive time alone counts.
    assert judge_input('x', 0.0, 99.9, 100.0, 0.25, 0.05).ok
    assert not judge_input('x', 0.0, 99.0, 100.0, 0.25, 0.05).ok


@pytest.mark.parametrize('name,old,new,looser', [
    ('max_speed', 0.15, 0.1, False), ('max_speed', 0.15, 0.2, True),
    ('max_speed', 0.15, 0.0, True),          # 0 = no limit
    ('max_speed', 0.0, 0.1, False),          # adding a limit tightens
    ('workspace_min', [0.2, -0.3, 0.05], [0.25, -0.3, 0.05], False),
    ('workspace_min', [0.2, -0.3, 0.05], [0.1, -0.3, 0.05], True),
    ('workspace_max', [0.7, 0.3, 0.6], [0.7, 0.3, 0.7], True),
    ('workspace_max', [0.7, 0.3, 0.6], [], True),      # removing the box
    ('action_max', None, [0.1, 0.1, 0.1, 1.0], False),
    ('max_delta', [0.02, 0.02], [0.01, 0.02], False),
    ('max_delta', [0.02, 0.02], [0.0, 0.02], True),    # <= 0 = no limit
    ('gripper_min', -1.0, -0.5, False), ('gripper_max', 1.0, 1.5, True),
])
def test_loosening_is_recognised(name, old, new, looser):
    assert (loosening(name, old, new) is not None) == looser
