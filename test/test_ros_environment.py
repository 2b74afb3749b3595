"""The ROS 2 wheels in the virtualenv talk over real DDS, on loopback only."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

PUBLISHER = textwrap.dedent('''
    import time, rclpy
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node('env_check_publisher')
    pub = node.create_publisher(String, 'env_check', 10)
    for i in range(200):
        pub.publish(String(data=f'hello {i}'))
        time.sleep(0.05)
    node.destroy_node()
    rclpy.shutdown()
''')


@pytest.mark.ros
def test_two_processes_exchange_messages_on_loopback():
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    import rclpy
    from std_msgs.msg import String
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER])
    rclpy.init()
    try:
        node = rclpy.create_node('env_check_subscriber')
        got = []
        node.create_subscription(String, 'env_check', lambda m: got.append(m.data), 10)
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert len(got) >= 3 and all(g.startswith('hello ') for g in got)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        proc.terminate()
        proc.wait(timeout=10)
