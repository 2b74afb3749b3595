"""Instruction phrasings of the ``mt50`` suite: all 50 Meta-World v3 tasks.

Every task has five *training* phrasings (recorded: the episode with seed ``s`` records
phrasing ``s % 5``; the first one is the plain canonical form) and three *held-out* phrasings
that no recorded episode uses, so a closed-loop evaluation can ask whether a policy follows an
instruction it never read. Tasks that share a scene or an object (door lock / unlock / open /
close, drawer open / close, the button, handle, plate-slide and puck families, ...) differ in
their words: each phrasing names what sets its task apart (the wall, the side, up or down,
into or back out). No phrasing is used by two tasks.
"""

from __future__ import annotations

from typing import Dict, Tuple

Phrasings = Tuple[Tuple[str, ...], Tuple[str, ...]]  # (training, held_out)

MT50: Dict[str, Phrasings] = {
    'assembly': (
        ('put the nut on the peg', 'pick up the ring and place it onto the peg',
         'grab the nut by its handle and put it on the peg',
         'slide the ring nut down onto the peg', 'fit the ring onto the peg'),
        ('could you put the ring onto the peg', 'assemble the nut onto the peg',
         'make sure the ring ends up around the peg'),
    ),
    'basketball': (
        ('put the ball in the hoop', 'pick up the ball and dunk it in the basket',
         'dunk the ball into the hoop', 'grab the ball and drop it through the hoop',
         'score a basket with the ball'),
        ('could you slam dunk the ball', 'place the basketball into the basket',
         'make sure the ball goes through the hoop'),
    ),
    'bin-picking': (
        ('move the puck to the other bin', 'pick up the puck and drop it in the other bin',
         'transfer the puck from one bin to the other',
         'lift the puck out of its bin into the other bin',
         'put the puck into the second bin'),
        ('could you move the puck over to the other bin',
         'relocate the puck into the neighboring bin',
         'make sure the puck ends up in the other bin'),
    ),
    'box-close': (
        ('close the box', 'put the lid on the box', 'pick up the lid and place it on the box',
         'grab the box lid and close the box with it', 'cover the box with its lid'),
        ('could you put the lid back on the box', 'shut the box with the lid',
         'make sure the box is closed'),
    ),
    'button-press-topdown': (
        ('press the button from the top', 'push the button down from above',
         'press down on the button from above', 'push the button straight down',
         'press the button downwards'),
        ('could you press the button from above', 'hit the button from the top',
         'make sure the button is pushed down from above'),
    ),
    'button-press-topdown-wall': (
        ('press the button from the top behind the wall',
         'reach over the wall and push the button down',
         'push the button down from above past the wall',
         'press down on the button behind the small wall',
         'reach over the little wall and press the button from above'),
        ('could you press the button from above over the wall',
         'hit the button from the top reaching over the wall',
         'make sure the button behind the wall is pushed down'),
    ),
    'button-press': (
        ('press the button from the front', 'push the button forward',
         'press the button horizontally', 'push the button in from the front',
         'press the button forward with the gripper'),
        ('could you press the button from the front', 'poke the button forward horizontally',
         'make sure the button is pushed in from the front'),
    ),
    'button-press-wall': (
        ('press the button from the front around the wall',
         'go around the wall and push the button forward',
         'push the button in from the front past the wall',
         'reach around the wall and press the button horizontally',
         'press the button forward behind the wall'),
        ('could you press the button from the front around the wall',
         'get around the wall and poke the button forward',
         'make sure the button past the wall is pushed from the front'),
    ),
    'coffee-button': (
        ('press the coffee machine button', 'push the button on the coffee machine',
         'press the button on the coffee maker', 'hit the coffee button',
         'push the coffee machine start button'),
        ('could you press the button of the coffee machine',
         'start the coffee machine with its button',
         'make sure the coffee machine button is pressed'),
    ),
    'coffee-pull': (
        ('pull the mug out from under the coffee machine',
         'pull the cup away from the coffee machine', 'drag the mug out from under the spout',
         'slide the mug back towards you away from the coffee machine',
         'pull the coffee mug away from the machine'),
        ('could you pull the mug out from the coffee machine',
         'draw the cup back out from under the spout',
         'make sure the mug is no longer under the coffee machine'),
    ),
    'coffee-push': (
        ('push the mug under the coffee machine',
         'push the cup under the spout of the coffee machine',
         'slide the mug in under the coffee maker', 'push the coffee mug forward under the spout',
         'move the mug under the coffee machine by pushing it'),
        ('could you push the mug beneath the coffee machine',
         'shove the cup in under the coffee spout',
         'make sure the mug sits under the coffee machine spout'),
    ),
    'dial-turn': (
        ('turn the dial', 'rotate the dial', 'twist the knob', 'turn the knob around',
         'rotate the dial with the gripper'),
        ('could you turn the dial', 'spin the knob', 'make sure the dial has been rotated'),
    ),
    'disassemble': (
        ('take the nut off the peg', 'pull the ring off the peg',
         'grab the nut by its handle and lift it off the peg', 'remove the ring from the peg',
         'lift the nut up and off the peg'),
        ('could you take the ring off the peg', 'disassemble the nut from the peg',
         'make sure the ring is no longer on the peg'),
    ),
    'door-close': (
        ('close the door', 'swing the door shut', 'push the door closed',
         'shut the hinged door', 'close the door all the way'),
        ('could you close the door', 'swing the door closed on its hinges',
         'make sure the door is shut'),
    ),
    'door-lock': (
        ('lock the door', 'turn the lock lever down to lock the door',
         'rotate the door lock down to lock it', 'push the lock down to lock the door',
         'lock the door with the lever'),
        ('could you lock the door', 'turn the door lock downwards to locked',
         'make sure the door is locked'),
    ),
    'door-open': (
        ('open the door', 'swing the door open', 'pull the door open by its handle',
         'grab the door handle and open the door', 'open the hinged door'),
        ('could you open the door', 'swing the door open on its hinges',
         'make sure the door is open'),
    ),
    'door-unlock': (
        ('unlock the door', 'turn the lock lever up to unlock the door',
         'rotate the door lock up to unlock it', 'push the lock up to unlock the door',
         'unlock the door with the lever'),
        ('could you unlock the door', 'turn the door lock upwards to unlocked',
         'make sure the door is unlocked'),
    ),
    'hand-insert': (
        ('pick up the block and insert it into the hole', 'put the block into the hole',
         'grab the block and drop it in the hole', 'lift the block and lower it into the hole',
         'place the block in the hole in the table'),
        ('could you put the block in the hole', 'get the block down into the opening',
         'carry the cube over and insert it in the hole'),
    ),
    'drawer-close': (
        ('close the drawer', 'push the drawer shut', 'push the drawer closed',
         'slide the drawer in', 'shut the drawer'),
        ('could you close the drawer', 'slide the drawer back into the cabinet',
         'make sure the drawer is shut'),
    ),
    'drawer-open': (
        ('open the drawer', 'pull the drawer open', 'pull the drawer out by its handle',
         'slide the drawer out', 'grab the drawer handle and pull it open'),
        ('could you open the drawer', 'draw the drawer out of the cabinet',
         'make sure the drawer is open'),
    ),
    'faucet-open': (
        ('turn the faucet on', 'open the faucet',
         'rotate the faucet handle to turn the water on', 'twist the tap on', 'turn on the tap'),
        ('could you turn the faucet on', 'open the tap', 'make sure the faucet is on'),
    ),
    'faucet-close': (
        ('turn the faucet off', 'close the faucet',
         'rotate the faucet handle to turn the water off', 'twist the tap off',
         'turn off the tap'),
        ('could you turn the faucet off', 'close the tap', 'make sure the faucet is off'),
    ),
    'hammer': (
        ('hammer the nail in', 'pick up the hammer and drive the nail into the wall',
         'use the hammer to hit the nail', 'grab the hammer and knock the peg in',
         'hit the nail with the hammer'),
        ('could you hammer in the nail', 'pound the nail into the wall with the hammer',
         'make sure the nail is hammered all the way in'),
    ),
    'handle-press-side': (
        ('press the handle down from the side', 'push the handle down from the side',
         'approach from the side and press the handle down',
         'press down on the side handle', 'push the sideways handle down'),
        ('could you press the handle down from the side',
         'from the side push the handle downwards',
         'make sure the side handle is pressed down'),
    ),
    'handle-press': (
        ('press the handle down', 'push the handle down', 'press down on the handle',
         'lower the handle by pressing on it', 'press the handle all the way down'),
        ('could you press the handle down', 'force the handle downwards',
         'make sure the handle is pressed down'),
    ),
    'handle-pull-side': (
        ('pull the handle up from the side', 'lift the handle up from the side',
         'approach from the side and pull the handle up', 'pull up on the side handle',
         'raise the sideways handle'),
        ('could you pull the handle up from the side', 'from the side lift the handle upwards',
         'make sure the side handle is pulled up'),
    ),
    'handle-pull': (
        ('pull the handle up', 'lift the handle up', 'pull up on the handle',
         'raise the handle', 'pull the handle all the way up'),
        ('could you pull the handle up', 'draw the handle upwards',
         'make sure the handle is pulled up'),
    ),
    'lever-pull': (
        ('pull the lever up', 'lift the lever', 'raise the lever up', 'pull up on the lever',
         'flip the lever up'),
        ('could you pull the lever up', 'swing the lever upwards',
         'make sure the lever is raised'),
    ),
    'pick-place-wall': (
        ('pick up the puck and place it behind the wall',
         'move the puck over the wall to the goal',
         'lift the puck over the wall and put it at the goal',
         'grab the puck and set it down behind the wall',
         'carry the puck past the wall to the target'),
        ('could you put the puck on the other side of the wall',
         'lift the puck across the wall to the goal spot',
         'make sure the puck ends up beyond the wall'),
    ),
    'pick-out-of-hole': (
        ('pick the puck out of the hole', 'lift the puck out of the hole',
         'take the puck out of the hole', 'grab the puck from the hole and lift it out',
         'get the puck out of the hole'),
        ('could you pick the puck up out of the hole', 'retrieve the puck from the hole',
         'make sure the puck is out of the hole'),
    ),
    'pick-place': (
        ('pick up the puck and place it at the goal', 'pick and place the puck',
         'move the puck to the target by picking it up',
         'grab the puck and put it on the goal', 'lift the puck and set it down at the target'),
        ('could you pick up the puck and put it at the goal',
         'carry the puck over to the goal spot', 'make sure the puck is placed at the goal'),
    ),
    'plate-slide': (
        ('slide the plate into the cabinet', 'push the plate forward into the cabinet',
         'slide the plate forward into the goal', 'push the plate into the net',
         'slide the plate straight in'),
        ('could you slide the plate into the cabinet',
         'shove the plate forward into the goal net',
         'make sure the plate ends up in the cabinet'),
    ),
    'plate-slide-side': (
        ('slide the plate sideways into the cabinet', 'push the plate sideways into the cabinet',
         'slide the plate in from the side', 'push the plate into the net from the side',
         'slide the plate sideways into the goal'),
        ('could you slide the plate sideways into the cabinet',
         'shove the plate in from the side', 'make sure the plate is slid in sideways'),
    ),
    'plate-slide-back': (
        ('slide the plate back out of the cabinet',
         'pull the plate out of the cabinet towards you',
         'slide the plate back towards the robot', 'drag the plate back out of the net',
         'pull the plate back out'),
        ('could you slide the plate back out of the cabinet',
         'draw the plate back out towards you', 'make sure the plate is out of the cabinet'),
    ),
    'plate-slide-back-side': (
        ('slide the plate sideways back out of the cabinet',
         'pull the plate sideways out of the cabinet', 'slide the plate back out to the side',
         'drag the plate out of the net sideways', 'pull the plate back out from the side'),
        ('could you slide the plate sideways back out of the cabinet',
         'draw the plate out of the cabinet to the side',
         'make sure the plate is slid back out sideways'),
    ),
    'peg-insert-side': (
        ('insert the peg sideways into the hole',
         'push the peg sideways into the hole in the box',
         'pick up the peg and slide it sideways into the hole',
         'plug the peg into the side hole', 'put the peg into the hole from the side'),
        ('could you insert the peg sideways into the hole',
         'plug the peg into the box from the side',
         'make sure the peg is inserted into the side hole'),
    ),
    'peg-unplug-side': (
        ('unplug the peg sideways', 'pull the peg sideways out of the hole',
         'unplug the peg from the side hole', 'slide the peg sideways out of the box',
         'take the peg out of the hole sideways'),
        ('could you unplug the peg', 'draw the peg out of its hole to the side',
         'make sure the peg is pulled out of the hole'),
    ),
    'soccer': (
        ('kick the ball into the goal', 'push the ball into the goal',
         'score a goal with the ball', 'shove the soccer ball into the net',
         'push the soccer ball into the goal'),
        ('could you kick the ball into the net', 'knock the football into the goal',
         'make sure the ball ends up in the goal'),
    ),
    'stick-push': (
        ('push the box with the stick', 'grab the stick and push the box forward with it',
         'use the stick to push the thermos forward',
         'pick up the stick and shove the box away', 'push the thermos away using the stick'),
        ('could you push the box forward with the stick',
         'use the stick to nudge the thermos away from you',
         'make sure the box is pushed forward using the stick'),
    ),
    'stick-pull': (
        ('pull the box with the stick', 'grab the stick and pull the box towards you with it',
         'use the stick to pull the thermos back', 'pick up the stick and drag the box closer',
         'pull the thermos towards you using the stick'),
        ('could you pull the box back with the stick',
         'use the stick to draw the thermos towards you',
         'make sure the box is pulled closer using the stick'),
    ),
    'push': (
        ('push the puck to the goal', 'slide the puck to the target',
         'push the puck over to the goal', 'shove the puck to the target',
         'move the puck to the goal by pushing it'),
        ('could you push the puck to the goal', 'nudge the puck onto the target',
         'make sure the puck is pushed to the goal'),
    ),
    'push-wall': (
        ('push the puck to the goal around the wall',
         'slide the puck around the wall to the target',
         'push the puck past the wall to the goal',
         'shove the puck around the wall to the target',
         'go around the wall and push the puck to the goal'),
        ('could you push the puck around the wall to the goal',
         'nudge the puck past the wall onto the target',
         'make sure the puck gets pushed around the wall to the goal'),
    ),
    'push-back': (
        ('push the puck back to the goal', 'pull the puck back towards you to the goal',
         'slide the puck back to the target', 'drag the puck back towards the robot',
         'bring the puck back to the goal'),
        ('could you push the puck back to the goal', 'draw the puck back onto the target',
         'make sure the puck is brought back to the goal'),
    ),
    'reach': (
        ('reach the goal', 'move the gripper to the goal', 'reach for the target point',
         'move the hand to the target', 'bring the gripper to the goal position'),
        ('could you reach the goal', 'touch the target point with the gripper',
         'make sure the gripper is at the goal'),
    ),
    'reach-wall': (
        ('reach the goal over the wall', 'move the gripper over the wall to the goal',
         'reach past the wall to the target point',
         'move the hand around the wall to the target',
         'bring the gripper over the wall to the goal position'),
        ('could you reach over the wall to the goal',
         'touch the target behind the wall with the gripper',
         'make sure the gripper gets past the wall to the goal'),
    ),
    'shelf-place': (
        ('put the puck on the shelf', 'pick up the puck and place it on the shelf',
         'lift the puck onto the shelf', 'grab the puck and set it on the shelf',
         'place the puck up on the shelf'),
        ('could you put the puck on the shelf', 'store the puck on the shelf',
         'make sure the puck sits on the shelf'),
    ),
    'sweep-into': (
        ('sweep the puck into the hole', 'push the puck into the hole',
         'slide the puck into the hole', 'sweep the puck into the hole in the table',
         'brush the puck into the hole'),
        ('could you sweep the puck into the hole', 'knock the puck into the hole',
         'make sure the puck falls into the hole'),
    ),
    'sweep': (
        ('sweep the puck off the table', 'push the puck off the edge of the table',
         'slide the puck off the table', 'sweep the puck over the table edge',
         'brush the puck off the table'),
        ('could you sweep the puck off the table', 'knock the puck off the edge of the table',
         'make sure the puck falls off the table'),
    ),
    'window-open': (
        ('open the window', 'slide the window open', 'push the window open',
         'slide the window sideways to open it', 'open the sliding window'),
        ('could you open the window', 'slide the window pane open',
         'make sure the window is open'),
    ),
    'window-close': (
        ('close the window', 'slide the window shut', 'push the window closed',
         'slide the window sideways to close it', 'close the sliding window'),
        ('could you close the window', 'slide the window pane shut',
         'make sure the window is closed'),
    ),
}


def check_phrasings() -> None:
    """Raise ValueError unless every task has 5 + 3 phrasings and no phrasing repeats."""
    seen = {}
    for task, (train, held_out) in MT50.items():
        if len(train) != 5 or len(held_out) != 3:
            raise ValueError(f'{task}: {len(train)} training / {len(held_out)} held-out phrasings')
        for text in train + held_out:
            if text in seen:
                raise ValueError(f'{text!r} is used by {seen[text]} and {task}')
            seen[text] = task
