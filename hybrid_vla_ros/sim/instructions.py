"""Instruction phrasings of every built-in task: training phrasings and held-out phrasings.

Each task has at least five *training* phrasings (the collector picks one per episode from
the episode seed) and at least three *held-out* phrasings that no recorded episode uses, so
a closed-loop evaluation can ask whether a policy understands an instruction it never read.
Colour tasks share templates; ``{colour}`` is replaced by the target colour's name.
No phrasing is shared by two tasks of one suite (the tests check it).
"""

from __future__ import annotations

from typing import Dict, Tuple

Phrasings = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (training, held_out)

# Tasks whose scene is shared with another task: only the verb tells them apart.
FIXED: Dict[str, Phrasings] = {
    'drawer-open': (
        ('open the drawer', 'pull the drawer open', 'slide the drawer out',
         'open the drawer all the way', 'pull out the drawer'),
        ('could you open the drawer', 'drag the drawer towards you', 'get the drawer open'),
    ),
    'drawer-close': (
        ('close the drawer', 'push the drawer shut', 'slide the drawer in', 'shut the drawer',
         'push the drawer closed'),
        ('could you close the drawer', 'push the drawer back in', 'get the drawer shut'),
    ),
    'window-open': (
        ('open the window', 'slide the window open', 'push the window open',
         'open up the window', 'slide the window pane open'),
        ('could you open the window', 'let some air in by opening the window',
         'get the window open'),
    ),
    'window-close': (
        ('close the window', 'slide the window shut', 'shut the window',
         'push the window closed', 'slide the window pane closed'),
        ('could you close the window', 'keep the draft out by closing the window',
         'get the window shut'),
    ),
    'faucet-open': (
        ('turn on the faucet', 'open the faucet', 'turn the faucet on',
         'rotate the faucet handle to open it', 'open the tap'),
        ('turn on the tap', 'let the water run', 'could you turn the faucet on'),
    ),
    'faucet-close': (
        ('turn off the faucet', 'close the faucet', 'turn the faucet off',
         'rotate the faucet handle to close it', 'close the tap'),
        ('turn off the tap', 'stop the water', 'could you turn the faucet off'),
    ),
    'door-lock': (
        ('lock the door', 'turn the lock to lock the door', 'push the lock lever down',
         'rotate the door lock closed', 'engage the door lock'),
        ('secure the door', 'could you lock the door', 'make sure the door is locked'),
    ),
    'door-unlock': (
        ('unlock the door', 'turn the lock to unlock the door', 'raise the lock lever',
         'rotate the door lock open', 'release the door lock'),
        ('could you unlock the door', 'open the lock on the door',
         'make sure the door is unlocked'),
    ),
    'button-press-topdown': (
        ('press the button', 'push the button down', 'press the button from the top',
         'push down on the button', 'hit the button'),
        ('could you press the button', 'give the button a push', 'press down the button'),
    ),
}

# Colour tasks: one scene, several same-shaped objects; only the colour word differs.
PICK_PLACE: Phrasings = (
    ('pick up the {colour} block and place it at the goal',
     'put the {colour} block on the yellow marker', 'move the {colour} block to the target',
     'grab the {colour} cylinder and bring it to the goal',
     'lift the {colour} block to the yellow marker'),
    ('bring the {colour} puck over to the yellow dot',
     'could you move the {colour} block to the goal', 'take the {colour} one to the marker'),
)

REACH: Phrasings = (
    ('reach the {colour} target', 'move the arm to the {colour} ball',
     'touch the {colour} sphere', 'put the fingertip on the {colour} ball',
     'go to the {colour} target'),
    ('reach for the {colour} one', 'move to the {colour} marker',
     'could you touch the {colour} ball'),
)


def colour_phrasings(template: Phrasings, colour: str) -> Phrasings:
    """The (training, held_out) phrasings of a colour template for one colour name."""
    train, held_out = template
    return (tuple(p.format(colour=colour) for p in train),
            tuple(p.format(colour=colour) for p in held_out))
