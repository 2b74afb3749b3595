"""Build a ``ros2 launch`` description from the shared node-set declaration (`nodeset`).

`launch` and `launch_ros` are imported inside `launch_description` only: they exist on a
robot's ROS 2 install but cannot be installed from PyPI, and this module must stay
importable without them. The node list, parameter files, overrides and remappings all come
from `nodeset.process_specs` — the same function ``hybrid-vla bringup`` uses.
"""

from __future__ import annotations


def launch_description(set_name: str):
    """A LaunchDescription declaring the set's arguments and starting its nodes.

    Arguments are resolved when the launch runs (an OpaqueFunction), so empty values leave
    the parameter file's values alone exactly as bringup does.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from . import nodeset

    args = nodeset.arguments(set_name)
    defaults = nodeset.defaults(set_name)

    def start_nodes(context, *unused, **unused_kw):
        import tempfile
        values = {a.name: LaunchConfiguration(a.name).perform(context) for a in args}
        # The launch-time overrides go to small parameter files (see
        # ProcessSpec.overrides_yaml); like launch_ros's own dict files they stay in /tmp.
        directory = tempfile.mkdtemp(prefix='hybrid_vla_launch_')
        return [Node(**nodeset.launch_node_kwargs(spec, directory))
                for spec in nodeset.process_specs(set_name, values)]

    declared = [DeclareLaunchArgument(a.name, default_value=defaults[a.name],
                                      description=a.description) for a in args]
    return LaunchDescription([*declared, OpaqueFunction(function=start_nodes)])
