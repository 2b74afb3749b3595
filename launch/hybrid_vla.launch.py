"""Perception, instruction and policy nodes for a real robot (``ros2 launch``).

    ros2 launch hybrid_vla_ros hybrid_vla.launch.py checkpoint:=/path/to/checkpoint \
        command_mode:=twist camera_remaps:=front/image_raw:=/camera/color/image_raw

Arguments: checkpoint, params_file, backend, command_mode, autostart, dry_run, namespace,
camera_remaps, remaps (``ros2 launch ... --show-args``). The node set, parameter files and
overrides come from hybrid_vla_ros.ros.tools.nodeset, the declaration ``hybrid-vla bringup robot``
uses too. The policy starts disabled: ``ros2 service call /policy/enable
std_srvs/srv/SetBool "{data: true}"``.
"""


def generate_launch_description():
    """The launch description of the ``robot`` node set."""
    from hybrid_vla_ros.ros.tools.launch_support import launch_description
    return launch_description('robot')
