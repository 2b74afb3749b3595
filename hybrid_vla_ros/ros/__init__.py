"""The ROS 2 runtime — what runs on the robot: the perception, instruction and policy nodes
(`perception_node`, `instruction_node`, `policy_node`, sharing `base`), their parameter
declarations (`parameters`, importable without rclpy), the tensor message codec, image
conversion, proprioception assembly, command output, diagnostics and QoS.

Tools that run *around* the nodes (bring-up, launch support, the simulated robot, bag
play/record, demo, benchmark, replay check, the user-side driver) live in `ros.tools`.
This package and its tools are the only code of hybrid_vla_ros that imports rclpy
(`.importlinter`); node modules import it at load, the rest inside functions. See
docs/ros.md and docs/architecture.md.
"""
