"""The ROS 2 package itself: package.xml, and a real colcon build of it."""

import os
import shutil
import subprocess
import sys
import warnings

import pytest

from conftest import REPO

VENV_BIN = os.path.dirname(sys.executable)


def test_package_xml_parses_without_warnings():
    from catkin_pkg.package import parse_package
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        found = []
        pkg = parse_package(os.path.join(REPO, 'package.xml'), warnings=found)
    assert found == [], found
    assert [str(w.message) for w in caught if 'catkin' in str(w.filename)] == []
    assert pkg.name == 'hybrid_vla_ros'
    assert pkg.package_format == 3
    assert pkg.get_build_type() == 'ament_python'
    deps = {d.name for d in pkg.exec_depends}
    for needed in ('rclpy', 'sensor_msgs', 'std_msgs', 'geometry_msgs', 'trajectory_msgs',
                   'diagnostic_msgs', 'std_srvs', 'cv_bridge', 'python3-numpy',
                   'python3-opencv', 'python3-yaml'):
        assert needed in deps
    assert 'python3-pytest' in {d.name for d in pkg.test_depends}


def test_colcon_build_installs_share_and_executables(tmp_path):
    colcon = os.path.join(VENV_BIN, 'colcon')
    if not os.path.exists(colcon):
        pytest.fail('colcon is not installed in the virtualenv (make venv installs it)')
    src = tmp_path / 'src' / 'hybrid_vla_ros'
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'install', 'log', '*.egg-info', '__pycache__', 'runs',
        '.pytest_cache', '.ruff_cache', 'data'))
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ['PATH'])
    result = subprocess.run(
        [colcon, 'build', '--base-paths', str(tmp_path / 'src'),
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install'),
         '--event-handlers', 'console_direct-'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prefix = tmp_path / 'install' / 'hybrid_vla_ros'
    share = prefix / 'share' / 'hybrid_vla_ros'
    assert (share / 'package.xml').is_file()
    assert (share / 'config' / 'models' / 'default.yaml').is_file()
    assert (share / 'config' / 'models' / 'early_fusion.yaml').is_file()
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'hybrid_vla_ros'
    assert marker.is_file()
    for sub in ('launch', 'models'):
        if os.path.isdir(os.path.join(REPO, sub)) and os.listdir(os.path.join(REPO, sub)):
            assert (share / sub).is_dir(), f'{sub}/ was not installed under share/'
    exe = prefix / 'lib' / 'hybrid_vla_ros' / 'hybrid-vla'
    assert exe.is_file() and os.access(exe, os.X_OK)
