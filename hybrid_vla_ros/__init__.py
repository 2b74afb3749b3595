"""hybrid_vla_ros: a hybrid vision-language-action policy for ROS 2.

Sub-packages, with dependencies pointing one way (ros -> inference -> model;
training -> data, model):

- ``model``: components, their registry, policy composition from YAML, losses, checkpoints.
- ``schema``: typed, validated configuration shared by every sub-package.
"""

__version__ = '0.1.0'
