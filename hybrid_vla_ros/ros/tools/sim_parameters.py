"""The simulated robot node's parameters as data (no rclpy, no simulator import): the
node (`sim_robot_node`) declares them, the docs test and the parameter-file checks read
them."""

from __future__ import annotations

from ...sim.tasks import MAX_START_JITTER, SUITES
from ..parameters import ParamSpec

SIM_ROBOT_PARAMS = (
    ParamSpec('suite', 'metaworld', 'built-in task suite', choices=tuple(SUITES)),
    ParamSpec('task', 'drawer-open', 'task of the suite (used from the next reset)',
              dynamic=True),
    ParamSpec('seed', 0, 'episode seed (used from the next reset; auto_reset adds one per '
                         'episode)', range=(0, 2**31 - 1), dynamic=True),
    ParamSpec('start_jitter', 0.0, 'metaworld: start the hand up to this far from its home '
                                   'pose on each axis, metres, drawn from the seed (0 = home)',
              range=(0.0, MAX_START_JITTER)),
    ParamSpec('image_size', 128, 'rendered image height and width, pixels', range=(8, 4096)),
    ParamSpec('cameras', ['front'], 'cameras to render (topics <camera>/image_raw)'),
    ParamSpec('mode', 'lockstep', 'stepping', choices=('lockstep', 'realtime')),
    ParamSpec('rate', 20.0, 'realtime: observations per second (Hz)', range=(0.1, 1000.0)),
    ParamSpec('command_timeout', 0.25, 'realtime: seconds after which the last command is '
                                       'replaced by a hold', range=(0.0, 60.0)),
    ParamSpec('lockstep_timeout', 1.0, 'lockstep: seconds without a command before the '
                                       'observation is published again', range=(0.01, 3600.0)),
    ParamSpec('auto_reset', False, 'start the next episode (seed + 1) when one ends'),
    ParamSpec('start_paused', False, 'wait for ~/reset before the first episode'),
    ParamSpec('announce_instruction', False, 'publish the episode\'s instruction on '
                                             'instruction at every reset'),
    ParamSpec('held_out', False, 'announce_instruction: use a held-out phrasing'),
    ParamSpec('frame_id', 'world', 'frame of ee_pose'),
    ParamSpec('diagnostics_period', 1.0, 'seconds between periodic /diagnostics messages',
              range=(0.05, 60.0)),
)
