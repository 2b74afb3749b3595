"""The user's side of a running graph, in one process: say instructions, call the policy's
and the simulator's services, set parameters, and watch commands, episode results and
diagnostics. `hybrid-vla say`, the demo, the benchmark and the tests use it.

It runs its own rclpy context, so it can live beside other rclpy code in one process.
Latency is measured the way a robot sees it: a command's header stamp is the stamp of the
observation it answers, so ``receive time - stamp`` is camera-to-command latency, and an
observation (a ``joint_states`` stamp) with no command carrying its stamp is a missed tick.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional


def stamp_key(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (a dict key)."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class GraphDriver:
    """See the module docstring.

    Args:
        namespace: namespace the graph runs in ('' for none).
        watch: also record observation stamps (joint_states) and command stamps.
        name: node name (a unique suffix is added).

    """

    def __init__(self, namespace: str = '', watch: bool = True, name: str = 'hybrid_vla_user'):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
        from geometry_msgs.msg import TwistStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, String
        from trajectory_msgs.msg import JointTrajectory

        from .. import qos, tensor_codec
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f'{name}_{os.getpid()}', namespace=namespace or None,
                                      context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.diagnostics: Dict[str, Any] = {}
        self.results: List[Any] = []
        self.language_stamps: List[int] = []
        self.observations: Dict[int, float] = {}   # stamp ns -> receive time (s)
        self.commands: Dict[int, float] = {}       # stamp ns -> first receive time (s)
        self.command_msgs: List[Any] = []
        self.keep_commands = False
        n = self.node
        self.instruction_pub = n.create_publisher(String, 'instruction', qos.LATCHED)
        self.estop_pub = n.create_publisher(Bool, 'estop', qos.EVENTS)
        self._String, self._Bool = String, Bool
        n.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        n.create_subscription(DiagnosticStatus, 'episode_result',
                              lambda m: self.results.append(m), qos.EVENTS)
        n.create_subscription(tensor_codec.MESSAGE, 'language_features',
                              lambda m: self.language_stamps.append(stamp_key(m.header.stamp)),
                              qos.LATCHED)
        if watch:
            # Best effort (matches any robot) but a deep queue: a busy observer must not
            # lose observations it is counting.
            observer = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)
            n.create_subscription(JointState, 'joint_states', self._on_observation, observer)
            for msg_type, topic in ((TwistStamped, 'ee_command'),
                                    (JointTrajectory, 'joint_command')):
                n.create_subscription(msg_type, topic, self._on_command,
                                      QoSProfile(depth=200))

    # ----------------------------------------------------------------- callbacks
    def _on_diag(self, msg) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = status

    def _on_observation(self, msg) -> None:
        self.observations.setdefault(stamp_key(msg.header.stamp), time.time())

    def _on_command(self, msg) -> None:
        self.commands.setdefault(stamp_key(msg.header.stamp), time.time())
        if self.keep_commands:
            self.command_msgs.append(msg)

    # ----------------------------------------------------------------- spinning
    def spin_for(self, seconds: float) -> None:
        """Process callbacks for `seconds`."""
        self.spin_until(lambda: False, seconds)

    def spin_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Process callbacks until `predicate()` is true (True) or `timeout` s pass (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(0.05, remaining))

    # ----------------------------------------------------------------- user actions
    def say(self, text: str, wait_subscriber: float = 5.0, ack_timeout: float = 0.0) -> bool:
        """Publish an instruction (reliable, transient local, as `hybrid-vla say` does).

        Waits up to `wait_subscriber` s for a subscription; with `ack_timeout` > 0 also waits
        for the ``language_features`` the instruction node answers with. Returns whether a
        subscriber (and, if asked, the answer) was there.
        """
        pub = self.instruction_pub
        matched = self.spin_until(lambda: pub.get_subscription_count() > 0, wait_subscriber)
        before = len(self.language_stamps)
        pub.publish(self._String(data=text))
        if ack_timeout > 0:
            return self.spin_until(lambda: len(self.language_stamps) > before, ack_timeout)
        return matched

    def estop(self, active: bool) -> None:
        """Publish on ``estop`` (std_msgs/Bool)."""
        self.spin_until(lambda: self.estop_pub.get_subscription_count() > 0, 5.0)
        self.estop_pub.publish(self._Bool(data=bool(active)))

    def call(self, srv_type, name: str, request=None, timeout: float = 10.0):
        """Call service `name`; the response, or None when it is not there in time."""
        client = self.node.create_client(srv_type, name)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(request if request is not None else srv_type.Request())
            self.spin_until(future.done, timeout)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def enable(self, on: bool = True, node: str = 'policy'):
        """Call ``<node>/enable`` (std_srvs/SetBool)."""
        from std_srvs.srv import SetBool
        return self.call(SetBool, f'{node}/enable', SetBool.Request(data=on))

    def lifecycle(self, node: str, transition: str) -> Optional[bool]:
        """Request a lifecycle transition (``configure``, ``activate``, ``deactivate``,
        ``cleanup``, ``shutdown``) of managed node `node` through its ChangeState service;
        whether it succeeded (None when the service did not answer)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState
        request = ChangeState.Request(transition=Transition(label=transition))
        response = self.call(ChangeState, f'{node}/change_state', request)
        return None if response is None else bool(response.success)

    def lifecycle_state(self, node: str) -> Optional[str]:
        """The lifecycle state label of managed node `node` (GetState), or None."""
        from lifecycle_msgs.srv import GetState
        response = self.call(GetState, f'{node}/get_state')
        return None if response is None else response.current_state.label

    def trigger(self, name: str):
        """Call a std_srvs/Trigger service (``policy/reset``, ``sim_robot/reset``)."""
        from std_srvs.srv import Trigger
        return self.call(Trigger, name)

    def set_params(self, node: str, values: Mapping[str, Any]) -> List[Any]:
        """Set parameters of `node` (``rcl_interfaces/srv/SetParameters``); the results."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        response = self.call(SetParameters, f'{node}/set_parameters', request)
        if response is None:
            raise TimeoutError(f'{node}/set_parameters did not answer')
        return list(response.results)

    # ----------------------------------------------------------------- diagnostics
    def status(self, node: str):
        """The newest DiagnosticStatus of node `node` (e.g. ``/policy``), or None."""
        return self.diagnostics.get(node)

    def values(self, node: str) -> Dict[str, str]:
        """The key/values of the newest status of `node` ({} when none)."""
        status = self.status(node)
        return {kv.key: kv.value for kv in status.values} if status is not None else {}

    def level(self, node: str) -> Optional[int]:
        """The newest level (0 OK, 1 WARN, 2 ERROR) of `node`, or None."""
        status = self.status(node)
        return status.level[0] if status is not None else None

    def wait_status(self, node: str, predicate: Callable[[Any], bool],
                    timeout: float) -> bool:
        """Spin until the newest status of `node` satisfies `predicate`."""
        def check():
            status = self.status(node)
            return status is not None and predicate(status)
        return self.spin_until(check, timeout)

    # ----------------------------------------------------------------- measurements
    def clear_measurements(self) -> None:
        """Forget recorded observations and commands."""
        self.observations.clear()
        self.commands.clear()
        self.command_msgs.clear()

    def latencies(self) -> List[float]:
        """Seconds from each observation stamp to the first command carrying it."""
        return [received - key * 1e-9 for key, received in self.commands.items()
                if key in self.observations]

    def missed(self, deadline: float, settle: float = 0.5) -> tuple:
        """(missed, total) observations whose command did not arrive within `deadline`
        seconds of the stamp; the newest `settle` seconds are not judged yet."""
        cutoff = time.time() - settle
        judged = [k for k in self.observations if k * 1e-9 < cutoff]
        missed = sum(1 for k in judged
                     if k not in self.commands or self.commands[k] - k * 1e-9 > deadline)
        return missed, len(judged)

    def close(self) -> None:
        """Destroy the node and shut this context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def say_once(text: str, topic: str = 'instruction', namespace: str = '',
             wait: float = 5.0) -> tuple:
    """Publish one instruction as ``ros2 topic pub --once`` would (waiting up to `wait` s for
    a subscriber), reliable + transient local, and wait until it is acknowledged.

    Returns (delivered: bool, resolved topic name, subscriptions matched).
    """
    import rclpy
    from std_msgs.msg import String

    from .. import qos
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node(f'hybrid_vla_say_{os.getpid()}', namespace=namespace or None,
                                 context=context)
        pub = node.create_publisher(String, topic, qos.LATCHED)
        deadline = time.monotonic() + wait
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        count = pub.get_subscription_count()
        pub.publish(String(data=text))
        from rclpy.duration import Duration
        acked = pub.wait_for_all_acked(Duration(seconds=2.0)) if count else False
        name = pub.topic_name
        node.destroy_node()
        return bool(count and acked), name, count
    finally:
        rclpy.try_shutdown(context=context)


def run_estop_heartbeat(rate: float, topic: str = 'estop', namespace: str = '') -> tuple:
    """Publish std_msgs/Bool false on `topic` at `rate` Hz until SIGINT / SIGTERM, then
    true (the policy stops at once rather than after its estop_timeout). Returns (resolved
    topic, messages sent)."""
    import signal
    import threading

    import rclpy
    from std_msgs.msg import Bool

    from .. import qos
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    context = rclpy.Context()
    rclpy.init(context=context)
    sent = 0
    try:
        node = rclpy.create_node(f'hybrid_vla_estop_{os.getpid()}',
                                 namespace=namespace or None, context=context)
        pub = node.create_publisher(Bool, topic, qos.EVENTS)
        while not stop.wait(1.0 / rate):
            pub.publish(Bool(data=False))
            sent += 1
        pub.publish(Bool(data=True))
        from rclpy.duration import Duration
        pub.wait_for_all_acked(Duration(seconds=1.0))
        name = pub.topic_name
        node.destroy_node()
        return name, sent
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        rclpy.try_shutdown(context=context)
