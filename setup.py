"""ament_python set-up for hybrid_vla_ros.

`colcon build` installs the executables under lib/hybrid_vla_ros (where `ros2 run` looks) and
launch/, config/ and models/ under share/hybrid_vla_ros. `pip install -e .` (what `make venv`
does) installs the same console scripts into the virtualenv's bin/.
"""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'hybrid_vla_ros'


def tree_data_files(top):
    """Return (install dir, files) pairs mirroring every file under `top` into share/."""
    pairs = {}
    for path in sorted(glob(os.path.join(top, '**', '*'), recursive=True)):
        if os.path.isfile(path):
            target = os.path.join('share', PACKAGE, os.path.dirname(path))
            pairs.setdefault(target, []).append(path)
    return sorted(pairs.items())


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *tree_data_files('config'),
        *tree_data_files('launch'),
        *tree_data_files('models'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='hybrid_vla_ros maintainers',
    maintainer_email='maintainers@hybrid-vla-ros.dev',
    description='Hybrid vision-language-action policy for ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'hybrid-vla = hybrid_vla_ros.cli:main',
            'perception_node = hybrid_vla_ros.ros.perception_node:main',
            'instruction_node = hybrid_vla_ros.ros.instruction_node:main',
            'policy_node = hybrid_vla_ros.ros.policy_node:main',
            'sim_robot_node = hybrid_vla_ros.ros.tools.sim_robot_node:main',
        ],
    },
)
