"""Online vs offline: replay a bag through the running nodes and compare their commands with
what ``eval-bag`` predicts for the same bag.

1. Offline: `evaluation.bag_eval` predicts the chunk of every control step (batch 1, the
   same backend the nodes run).
2. Online: the perception, instruction and policy nodes start as separate processes on the
   bag's clock (``use_sim_time``; the player publishes ``/clock``), with the policy
   re-planning every tick (``replan_every: 1``, synchronous) and its safety limits opened
   wide, so that each command is the first action of the chunk computed for one image —
   the quantity eval-bag scores. The first instruction is said, the bag's first step is
   published until the graph answers it (discovery complete end to end), then the bag's
   camera and proprioception topics — and its instruction topic when the instruction
   changes — are played on the nodes' input topics from their serialized bytes; the
   commands the policy publishes (``ee_command`` twist + ``gripper_command``) are
   recorded to a rosbag2.
3. Each recorded command is matched to the offline step with the same stamp (commands
   carry the stamp of the image they answer; the first step, answered while priming and
   again when played, on its last answer); differences above the tolerance are
   mismatches, offline steps without a command are reported as missed.

Only end-effector twist policies (the built-in suite's command form) are checked.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from ...schema import ConfigError

DEFAULT_TOLERANCE = 1e-4
WIDE = 1e9  # safety bounds that never bind: the check compares raw policy output


@dataclasses.dataclass
class ReplayCheckResult:
    """Outcome of one replay check (all arrays in the policy's action units)."""

    bag: str
    steps: int
    matched: int
    missed: List[int]
    mismatches: List[dict]
    max_abs_diff: List[float]
    tolerance: float
    latency_ms: Dict[str, float]
    playback: str
    commands_bag: str

    @property
    def ok(self) -> bool:
        """Every offline step got a command and all agree within the tolerance."""
        return not self.missed and not self.mismatches and self.matched == self.steps

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f'{self.bag}: {self.matched}/{self.steps} control steps answered online; '
                 f'max |online - offline| per action entry '
                 + ', '.join(f'{d:.2e}' for d in self.max_abs_diff)
                 + f' (tolerance {self.tolerance:g})']
        if self.mismatches:
            lines.append(f'{len(self.mismatches)} commands differ by more than the tolerance, '
                         f'first at step {self.mismatches[0]["step"]}')
        if self.missed:
            lines.append(f'{len(self.missed)} steps got no command (first: step '
                         f'{self.missed[0]}); see the node logs. Images are sensor data: a node '
                         'that is still busy keeps only the newest, so on a loaded machine '
                         'try a lower --rate')
        if self.latency_ms:
            lines.append('replay latency, image published -> command received: p50 '
                         f'{self.latency_ms["p50"]:.1f} ms, p99 {self.latency_ms["p99"]:.1f} '
                         f'ms, max {self.latency_ms["max"]:.1f} ms')
        lines.append('AGREE' if self.ok else 'DISAGREE')
        return '\n'.join(lines)


def _policy_overrides(action_dim: int, gripper: int) -> dict:
    return {'use_sim_time': True, 'autostart': True, 'dry_run': False,
            # An offline check: no operator holds an e-stop heartbeat (robot.yaml's mode).
            'estop_mode': 'latch',
            'command_mode': 'twist', 'tick_source': 'features', 'scheduler': 'replan',
            'replan_every': 1, 'async_inference': False, 'gripper_index': gripper,
            # every image must be answered with its own proprioception: wait for it
            'proprio_wait': 1.0,
            # The warm-up clock may run ahead of a bag that starts near time 0, and the jump
            # back to the bag's time can reach the policy after the first image: staleness
            # is not what this check is about, so no input is ever too old here.
            'max_age': 3600.0,
            'safety.action_min': [-WIDE] * action_dim, 'safety.action_max': [WIDE] * action_dim,
            'safety.max_delta': [0.0] * action_dim, 'safety.max_speed': 0.0,
            'safety.workspace_min': [-WIDE] * 3, 'safety.workspace_max': [WIDE] * 3,
            'safety.gripper_min': -WIDE, 'safety.gripper_max': WIDE}


def _input_topics(tm) -> Dict[str, str]:
    """Bag topic -> node input topic for the topic map's cameras, proprioception and
    instruction (proprioception keeps its name: the policy node reads ``ee_pose`` and
    ``joint_states``)."""
    out = {topic: f'{camera}/image_raw' for camera, topic in tm.cameras.items()}
    for source in tm.proprio:
        out[source.topic] = source.topic.lstrip('/')
    if tm.instruction.topic:
        out[tm.instruction.topic] = 'instruction'
    return out


def _read_commands(bag_dir: Path):
    """(twists [(receive ns, stamp ns, (3,) linear)], grippers [(receive ns, value)])."""
    from ...data.bag import open_bag
    twists, grippers = [], []
    with open_bag(bag_dir) as reader:
        for connection, receive_ns, data in reader.messages():
            msg = reader.deserialize(data, connection.msgtype)
            if connection.topic.endswith('ee_command'):
                s = msg.header.stamp
                v = msg.twist.linear
                twists.append((int(receive_ns), s.sec * 1_000_000_000 + s.nanosec,
                               (v.x, v.y, v.z)))
            elif connection.topic.endswith('gripper_command'):
                grippers.append((int(receive_ns), float(msg.data)))
    return twists, grippers


def _pair_gripper(twists, grippers, window_ns: int = 20_000_000):
    """For each twist, the gripper command of the same tick: the policy publishes both
    back to back, while a hold publishes only the twist; so the gripper received closest
    in time (within `window_ns`) belongs to it, else None."""
    times = np.array([t for t, _ in grippers], dtype=np.int64)
    out = []
    for receive, _, _ in twists:
        if not len(times):
            out.append(None)
            continue
        i = int(np.argmin(np.abs(times - receive)))
        out.append(grippers[i][1] if abs(times[i] - receive) <= window_ns else None)
    return out


def replay_check(checkpoint, bag, out, rate: float = 0.25,
                 tolerance: float = DEFAULT_TOLERANCE, topic_map: Optional[str] = None,
                 backend: str = 'onnxruntime', startup_timeout: float = 90.0,
                 log: Callable[[str], None] = print) -> ReplayCheckResult:
    """Run the check (module docstring) and write ``out/replay_check.json``, the offline
    report (``out/offline/``), the recorded commands (``out/online_commands/``) and the
    node logs (``out/logs/``). `rate` slows playback (0.25: a quarter of real time) so a
    busy machine still answers every image before the next one."""
    from ...data.bag import cdr_header_stamp
    from ...evaluation.bag_eval import evaluate, resolve_topic_map
    from ...inference.backend import load_backend
    from .bag_player import BagPlayer
    from .bag_recorder import BagRecorder
    from .bringup import Supervisor
    from .driver import GraphDriver
    from .nodeset import config_path, process_specs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bag = Path(bag)
    be = load_backend(checkpoint, backend, threads=1)
    spec = be.spec
    if len(spec.action_names) and not spec.action_names[0].startswith('ee_command.linear'):
        raise ConfigError(f'replay-check compares end-effector twist commands; this policy '
                          f'outputs {", ".join(spec.action_names)}')
    if spec.action_dim != 4:
        raise ConfigError(f'replay-check expects [vx, vy, vz, gripper] actions, the policy '
                          f'has {spec.action_dim}')
    tm = resolve_topic_map(checkpoint, topic_map, None)
    if not tm.instruction.topic:
        raise ConfigError('replay-check needs the instruction on a topic in the bag')
    log('offline: scoring the bag with eval-bag ...')
    del be
    _, scores = evaluate(checkpoint, [bag], out / 'offline', backend, topic_map,
                         progress=None)
    score = scores[0]
    offline = {int(round(s * 1e9)): t for t, s in enumerate(score.stamps)}
    first_stamp = min(offline)

    specs = process_specs('robot', {'checkpoint': str(checkpoint), 'backend': backend,
                                    'params_file': config_path('robot.yaml')},
                          extra={'perception': {'use_sim_time': True},
                                 'instruction': {'use_sim_time': True},
                                 'policy': _policy_overrides(4, 3)})
    supervisor = Supervisor(specs, log_dir=str(out / 'logs'), out=lambda line: None)
    driver = GraphDriver(name='hybrid_vla_replay_check')
    commands_dir = out / 'online_commands'
    recorder = player = None
    published: Dict[int, float] = {}
    camera_topics = {t.lstrip('/') for t in tm.cameras.values()}
    try:
        # The nodes run on the bag's clock, whose time moves only when /clock is published
        # (their diagnostics timers too): until playback takes over, a warm-up clock runs at
        # wall speed from before the bag's start (it may jump back when playback starts,
        # which ROS clocks and timers handle).
        from rosgraph_msgs.msg import Clock
        warmup_from = max(0, int(score.stamps[0] * 1e9) - int((startup_timeout + 60) * 1e9))
        wall0 = time.monotonic()
        clock_pub = driver.node.create_publisher(Clock, '/clock', 10)

        def tick_clock() -> None:
            msg = Clock()
            ns = warmup_from + int((time.monotonic() - wall0) * 1e9)
            msg.clock.sec, msg.clock.nanosec = divmod(ns, 10**9)
            clock_pub.publish(msg)

        clock_timer = driver.node.create_timer(0.05, tick_clock)
        supervisor.start()
        log('online: starting perception, instruction and policy nodes ...')
        from .demo import wait_ready
        wait_ready(driver, supervisor, startup_timeout, nodes=('/perception', '/instruction',
                                                              '/policy'))
        # The instruction first: the bag's own instruction message comes with its first
        # image, and the policy would hold on that image while the text is being encoded.
        if not driver.say(score.instruction, ack_timeout=15.0):
            raise ConfigError('the instruction node did not answer the instruction')

        inputs = _input_topics(tm)
        # The first instruction was said above; replaying the same text would only flush
        # the policy's queue at the first step. A bag whose instruction changes is replayed
        # with its instruction topic.
        if len(score.instructions) == 1:
            inputs.pop(tm.instruction.topic)
        player = BagPlayer(driver.node, bag, topics=list(inputs), remap=inputs, rate=rate,
                           clock=True, latched=[tm.instruction.topic])
        camera_outs = {out for name, out in player.topics.items()
                       if name.lstrip('/') in camera_topics}

        def on_publish(topic: str, ns: int, data: bytes) -> None:
            if topic in camera_outs:
                published.setdefault(cdr_header_stamp(data) or ns, time.time())

        player.on_publish = on_publish
        if player.skipped:
            raise ConfigError('cannot replay: ' + '; '.join(
                f'{k}: {v}' for k, v in sorted(player.skipped.items())))
        recorder = BagRecorder(driver.node, ['ee_command', 'gripper_command'], commands_dir)
        missing = recorder.start(timeout_s=30.0)
        if missing:
            raise ConfigError(f'the policy node does not publish {", ".join(missing)}')
        if not driver.spin_until(lambda: player.publishers_ready(), 30.0):
            raise ConfigError('the nodes did not subscribe to '
                              + ', '.join(player.missing_subscribers()))
        if not driver.spin_until(recorder.matched, 30.0):
            raise ConfigError('the recorder did not match the policy\'s command publishers')
        driver.node.destroy_timer(clock_timer)
        driver.node.destroy_publisher(clock_pub)
        # Prime the graph with the bag's first step until its command comes back: then
        # every reader on the way has matched its writer and no timed frame is lost. An
        # answer while priming may be a hold (on a loaded machine the image can arrive
        # before the proprioception's reader has matched), so the first step is scored on
        # its last answer, the timed playback's, below.
        deadline = time.monotonic() + 30.0
        while first_stamp not in driver.commands:
            if time.monotonic() > deadline:
                raise ConfigError('the nodes did not answer the bag\'s first step within 30 s '
                                  f'(see {out / "logs"})')
            player.prime()
            driver.spin_for(0.3)
        log(f'online: replaying {bag.name} at rate {rate:g} ...')
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault('report', player.play()),
                                  daemon=True)
        thread.start()
        while thread.is_alive():
            driver.spin_for(0.1)
        expected = len(offline)
        driver.spin_until(lambda: sum(recorder.counts().values()) >= 2 * expected, 10.0)
        driver.spin_for(0.5)
        playback = result['report'].format()
    finally:
        if recorder is not None:
            recorder.close()
        if player is not None:
            player.close()
        supervisor.stop()
        driver.close()

    twists, grippers = _read_commands(commands_dir)
    received = driver.commands
    matched, mismatches, seen = 0, [], set()
    max_diff = np.zeros(4)
    answers = list(zip(twists, _pair_gripper(twists, grippers), strict=True))
    # The primed first step was answered several times; its last answer is the timed one.
    primed = [i for i, ((_, stamp, _), _) in enumerate(answers) if stamp == first_stamp]
    primed_last = primed[-1] if primed else None
    for i, ((_, stamp, linear), grip) in enumerate(answers):
        t = offline.get(stamp)
        if t is None or t in seen or (stamp == first_stamp and i != primed_last):
            continue  # a hold before playback (no image), a priming or a repeated answer
        seen.add(t)
        online = np.array([*linear, np.nan if grip is None else grip])
        expected_action = score.predicted[t, 0].astype(np.float64)
        diff = np.abs(online - expected_action)
        max_diff = np.fmax(max_diff, diff)
        matched += 1
        if not (diff <= tolerance).all():  # NaN (no gripper command) counts as a mismatch
            mismatches.append({'step': t, 'online': online.tolist(),
                               'offline': expected_action.tolist(),
                               'max_abs_diff': float(diff.max())})
    missed = sorted(set(offline.values()) - seen)
    # The first step was answered while priming, before its timed publication: not counted.
    latency_ms = {offline[s]: (received[s] - published[s]) * 1e3 for s in published
                  if s in received and s in offline and s != first_stamp}
    lat = list(latency_ms.values())
    latency = ({'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99)),
                'max': float(max(lat)), 'n': len(lat),
                'slowest_step': int(max(latency_ms, key=latency_ms.get))} if lat else {})
    res = ReplayCheckResult(str(bag), len(offline), matched, missed, mismatches,
                            max_diff.tolist(), tolerance, latency, playback,
                            str(commands_dir))
    (out / 'replay_check.json').write_text(json.dumps(
        dict(dataclasses.asdict(res), ok=res.ok), indent=1))
    return res
