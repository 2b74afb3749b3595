"""The simulated robot plus the perception, instruction and policy nodes (``ros2 launch``).

    ros2 launch hybrid_vla_ros sim_demo.launch.py task:=drawer-open sim_mode:=realtime
    hybrid-vla say "open the drawer"

Arguments: checkpoint, params_file, backend, command_mode, autostart, dry_run, namespace,
camera_remaps, remaps, task, sim_mode. The node set, parameter files and overrides come from
hybrid_vla_ros.ros.tools.nodeset, the declaration ``hybrid-vla bringup sim`` uses too.
"""


def generate_launch_description():
    """The launch description of the ``sim`` node set."""
    from hybrid_vla_ros.ros.tools.launch_support import launch_description
    return launch_description('sim')
