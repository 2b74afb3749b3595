"""ROS 2 tools around the runtime (not on a robot's control path): bring-up and the node-set
declaration the launch files share, the simulated robot node, the graph driver behind
``hybrid-vla say``, the demo and the end-to-end benchmark, rosbag2 play / record and the
replay check. They may use everything in `hybrid_vla_ros.ros` and the simulator; the
runtime never imports them.
"""
