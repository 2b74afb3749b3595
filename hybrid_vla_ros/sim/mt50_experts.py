"""Scripted experts of the ``mt50`` suite: the protocol's, and this package's revised labels.

``protocol`` is Meta-World's own scripted policy of every task (``metaworld.policies``),
the one the published protocol's expert column and every evaluation use. ``revised`` is the
same policy except where its labels are known to contradict themselves in states a trained
policy visits; it exists only to label training data (``hybrid-vla collect --expert
revised``), never to score anything. A revision is a `HoldRule`: once the object is
held, keep to the protocol expert's post-grasp target instead of switching back at its
threshold. The rules (`HOLD_RULES`; docs/mt50.md, "Revised labels for disassemble", "...
for plate-slide-back", "... for pick-out-of-hole" and "... for basketball, peg-insert-side
and bin-picking"):

- **disassemble**: Meta-World's expert descends onto the wrench handle until the hand is
  within 3 cm of its grasp point in height, then lifts. A closed grasp sits 2.7-3.1 cm
  above that point, so in the states where a policy holds the handle the label flips
  between "descend" and "lift" on sub-millimetre differences. The revision keeps lifting
  once the handle is held: within 2 cm of the grasp point in x-y, gripper opening below 0.6
  and within 5 cm in height. Everywhere else it is Meta-World's expert, so the
  demonstrations it drives itself are the same up to that switch.
- **plate-slide-back**: Meta-World's expert drags the plate by pressing on it 6.5 cm in
  front of its centre while the hand is within 1 cm of that point in x-y, and otherwise
  goes 10 cm above it to come down again; the plate slips further than 1 cm under the hand
  in most of its own episodes' last, sideways drag, so its labels flip between "drag" and
  "go up" there too. The revision keeps dragging while the hand is within 3 cm of the
  pressing point in x-y and within the protocol's own 4 cm in height (the plate moved
  under the hand, `HoldRule.snap_xy`).
- **pick-out-of-hole**: Meta-World's expert descends while the hand is more than 1 cm from
  the puck's grasp point in height and lifts within it. A grasp a policy closes can hold
  the puck 1.4 cm low in the fingers; there the label is "descend" at every step of the
  lift, since hand and puck move together. The revision lifts once the fingers are closed
  on the puck (opening 0.35-0.55); while they close it keeps the protocol's wobble, so on
  the expert's own episodes nothing changes.
- **basketball**: Meta-World's expert lifts once the hand is within 2.5 cm of the ball's
  grasp point in height; its own grasps settle 2.4-3.2 cm off, so it presses the ball into
  the table until the fingers squeeze it within the gate, and a policy's grasp 2.5-3 cm off
  gets "descend" through the whole lift and carry. The revision lifts within 3 cm once the
  fingers are closed on the ball (opening 0.4-0.66).
- **peg-insert-side** and **bin-picking**: the same gate, 2.5 cm above the peg and 1 cm
  from the cube's grasp point, with the expert's own grasps settling at it (2.4-2.5 cm and
  1.0 cm): a grasp a millimetre further off gets "descend" (bin-picking: and "open" beyond
  2 cm) through the lift. The revisions lift within 4 cm / 3 cm once the fingers are closed.

Meta-World is imported when an expert is built, not when this module is.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

import numpy as np

from .tasks import DEFAULT_EXPERT, check_expert_choice


@dataclasses.dataclass(frozen=True)
class HoldRule:
    """When a revised expert counts an object as held.

    While it is held, the revised expert answers what the protocol expert answers for the
    same state with the object exactly at its grasp point in height, i.e. the protocol
    expert's own post-grasp branch, whatever millimetres the grasp actually sits off.

    Attributes:
        grasp_offset: (3,) metres added to the object position (``obs[4:7]``) to get the
            grasp point, as the protocol expert does.
        xy_radius: hand-to-grasp-point distance in x-y within which the object can be held
            (m; the protocol expert's own "above the object" radius).
        min_opening, max_opening: gripper opening (0 closed .. 1 open) of fingers closed on
            the object; fingers that closed on nothing close further than `min_opening`.
        height_band: |hand - grasp point| in z within which the hold lasts (m); wider than
            the protocol expert's switch, which is what removes the flip.
        snap_xy: also move the object in x-y to sit exactly under the hand (for an object
            dragged rather than grasped, whose protocol expert re-approaches from above as
            soon as the hand slips off the grasp point in x-y).

    """

    grasp_offset: Tuple[float, float, float]
    xy_radius: float
    min_opening: float
    max_opening: float
    height_band: float
    snap_xy: bool = False


# The revised tasks (Meta-World env name -> rule); docs/mt50.md says why each.
HOLD_RULES: Dict[str, HoldRule] = {
    # Protocol: descend while more than 3 cm above the grasp point, lift within it; a closed
    # grasp sits 2.7-3.1 cm above it.
    'disassemble-v3': HoldRule(grasp_offset=(-0.02, 0.0, 0.01), xy_radius=0.02,
                               min_opening=0.0, max_opening=0.6, height_band=0.05),
    # Protocol: drag the plate pressing on it 6.5 cm in front of its centre while the hand is
    # within 1 cm of that point in x-y, else go 10 cm above it and come down again. The
    # gripper stays open and plays no part: the opening bounds admit any opening (0..1).
    'plate-slide-back-v3': HoldRule(grasp_offset=(0.0, -0.065, 0.025), xy_radius=0.03,
                                    min_opening=0.0, max_opening=2.0, height_band=0.04,
                                    snap_xy=True),
    # Protocol: descend while the hand is more than 1 cm from the puck's grasp point in
    # height, lift within it. Fingers closed on the puck open 0.41-0.45 (on nothing 0.30);
    # a grasp a policy closed can hold the puck 1.4 cm low, where the protocol says
    # "descend" at every step of the lift. Above 0.55 (fingers still closing) the
    # protocol's own descend/lift wobble is kept: it is what closes them.
    'pick-out-of-hole-v3': HoldRule(grasp_offset=(0.0, 0.0, 0.02), xy_radius=0.02,
                                    min_opening=0.35, max_opening=0.55, height_band=0.03),
    # Protocol: descend while the hand is more than 2.5 cm from the ball's grasp point in
    # height, lift within it. Fingers closed on the ball open 0.58-0.65 (on nothing 0.30);
    # its own grasps settle 2.4-3.2 cm off and a policy's 2.5-3 cm off, where the label is
    # "descend" at every step of the lift and the carry to the hoop.
    'basketball-v3': HoldRule(grasp_offset=(0.0, 0.0, 0.01), xy_radius=0.04,
                              min_opening=0.4, max_opening=0.66, height_band=0.03),
    # Protocol: descend while the hand is more than 2.5 cm above the peg in height, lift
    # within it; its own grasps settle 2.4-2.5 cm above, so a policy's grasp a millimetre
    # lower gets "descend" through the whole carry. Fingers closed on the peg open 0.28-0.33
    # (the same as on nothing: the 4 cm x-y / height bounds keep the rule at the peg).
    'peg-insert-side-v3': HoldRule(grasp_offset=(0.0, 0.0, 0.0), xy_radius=0.04,
                                   min_opening=0.0, max_opening=0.35, height_band=0.04),
    # Protocol: descend while the hand is more than 1 cm from the cube's grasp point (3 cm
    # above its centre) in height, and open the fingers (-1) beyond 2 cm; its own grasps
    # settle 1.0 cm off. Fingers closed on the cube open 0.45-0.49.
    'bin-picking-v3': HoldRule(grasp_offset=(0.0, 0.0, 0.03), xy_radius=0.02,
                               min_opening=0.38, max_opening=0.55, height_band=0.03),
}


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
    protocol = ENV_POLICY_MAP[env_name]()
    if expert == 'revised' and env_name in HOLD_RULES:
        return HoldingPolicy(protocol, HOLD_RULES[env_name])
    return protocol


def is_held(rule: HoldRule, state: np.ndarray) -> bool:
    """Whether `rule` counts the object as held in Meta-World's (39,) state."""
    hand = state[:3]
    grasp = state[4:7] + np.asarray(rule.grasp_offset)
    return bool(np.linalg.norm(hand[:2] - grasp[:2]) <= rule.xy_radius
                and rule.min_opening <= state[3] < rule.max_opening
                and abs(hand[2] - grasp[2]) <= rule.height_band)


def held_state(rule: HoldRule, state: np.ndarray) -> np.ndarray:
    """`state` with the object moved in z to the hand's grasp height (and, with
    `rule.snap_xy`, in x-y under the hand's grasp point): (39,) float64."""
    out = np.array(state, dtype=np.float64)
    out[6] = out[2] - rule.grasp_offset[2]
    if rule.snap_xy:
        out[4:6] = out[0:2] - np.asarray(rule.grasp_offset[:2])
    return out


class HoldingPolicy:
    """A protocol expert that keeps to its post-grasp branch while `rule` says the object is
    held (`held_state`); elsewhere it is the protocol expert unchanged.

    Args:
        protocol: Meta-World's scripted policy of the task.
        rule: when the object counts as held.

    """

    def __init__(self, protocol, rule: HoldRule) -> None:
        self.protocol, self.rule = protocol, rule

    def get_action(self, obs) -> np.ndarray:
        """(4,) float32 action for Meta-World's (39,) observation `obs`."""
        if is_held(self.rule, np.asarray(obs)):
            return self.protocol.get_action(held_state(self.rule, obs))
        return self.protocol.get_action(obs)
