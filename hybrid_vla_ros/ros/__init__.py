"""The ROS 2 runtime: perception, instruction, policy and simulated-robot nodes, the tensor
message codec, bring-up and the user-facing commands (`hybrid-vla bringup | say | demo |
bench-ros`).

This is the only package of hybrid_vla_ros that imports rclpy, and only the node modules
and the command bodies do so; `nodeset` and `launch_support` are importable without it (the
launch files and the CLI's help use them). See docs/ros.md.
"""
