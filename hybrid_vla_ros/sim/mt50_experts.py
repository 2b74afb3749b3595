"""Scripted experts of the ``mt50`` suite: the protocol's, and this package's revised labels.

``protocol`` is Meta-World's own scripted policy of every task (``metaworld.policies``),
the one the published protocol's expert column and every evaluation use. ``revised`` is the
same policy except where its labels are known to contradict themselves in states a trained
policy visits; it exists only to label training data (``hybrid-vla collect --expert
revised``), never to score anything. Revisions (docs/mt50.md, "Revised labels for
disassemble"):

- **disassemble**: Meta-World's expert descends onto the wrench handle until the hand is
  within 3 cm of its grasp point in height, then lifts. A closed grasp sits 2.7-3.1 cm
  above that point, so in the states where a policy holds the handle the label flips
  between "descend" and "lift" on sub-millimetre differences. The revision keeps lifting
  once the handle is held: within 2 cm of the grasp point in x-y, gripper opening below 0.6
  and within 5 cm in height. Everywhere else it is Meta-World's expert, so the
  demonstrations it drives itself are the same up to that switch.

Meta-World is imported when an expert is built, not when this module is.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .tasks import check_expert_choice

DEFAULT_EXPERT = 'protocol'
# Tasks whose `revised` expert differs from the protocol's.
REVISED_TASKS: Tuple[str, ...] = ('disassemble',)

# Disassemble's hold rule (metres; gripper opening 0 closed .. 1 open).
HOLD_XY_RADIUS = 0.02     # Meta-World's own "above the handle" radius
HOLD_MAX_OPENING = 0.6    # fingers closed on the handle
HOLD_HEIGHT_BAND = 0.05   # |hand - grasp point| in z while still holding


def make_expert(env_name: str, expert: str = DEFAULT_EXPERT):
    """The scripted policy of Meta-World environment `env_name` (e.g. ``disassemble-v3``).

    Args:
        env_name: a key of ``metaworld.policies.ENV_POLICY_MAP``.
        expert: ``protocol`` (Meta-World's policy) or ``revised`` (see the module docstring).

    Returns:
        An object with ``get_action(state) -> (4,) float32``: dx, dy, dz (action units)
        and grab effort, from Meta-World's (39,) full observation.

    """
    from metaworld.policies import ENV_POLICY_MAP
    check_expert_choice('mt50', expert)
    if expert == 'revised' and env_name == 'disassemble-v3':
        return _holding_disassemble_policy()
    return ENV_POLICY_MAP[env_name]()


def _holding_disassemble_policy():
    from metaworld.policies.sawyer_disassemble_v3_policy import SawyerDisassembleV3Policy

    class HoldingDisassemblePolicy(SawyerDisassembleV3Policy):
        """Meta-World's disassemble expert that keeps lifting once the handle is held."""

        @staticmethod
        def _desired_pos(o_d):
            hand = o_d['hand_pos']
            grasp = o_d['wrench_pos'] + np.array([-0.02, 0.0, 0.01])  # Meta-World's offset
            holding = (np.linalg.norm(hand[:2] - grasp[:2]) <= HOLD_XY_RADIUS
                       and o_d['gripper'] < HOLD_MAX_OPENING
                       and abs(hand[2] - grasp[2]) <= HOLD_HEIGHT_BAND)
            if holding:
                return hand + np.array([0.0, 0.0, 0.1])
            return SawyerDisassembleV3Policy._desired_pos(o_d)

    return HoldingDisassemblePolicy()
