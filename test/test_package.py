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
    # Keys rosdep does not know would stop `rosdep install`: pip dependencies go to
    # requirements-robot.txt instead.
    keys = deps | {d.name for d in pkg.test_depends}
    assert not [k for k in keys if k.endswith('-pip')], keys


def test_robot_requirements_have_no_torch_and_no_ros_wheels():
    lines = [line.split('#')[0].strip() for line in
             open(os.path.join(REPO, 'requirements-robot.txt'), encoding='utf-8')]
    reqs = [line for line in lines if line]
    names = {r.split('>')[0].split('<')[0].split('=')[0].strip().lower() for r in reqs}
    assert {'onnxruntime', 'tokenizers', 'numpy', 'pyyaml'} <= names
    assert not names & {'torch', 'transformers', 'safetensors', 'onnx'}
    assert not [n for n in names if n.startswith('ros-')]
    assert not [r for r in reqs if '==' in r], 'ranges, not pins: Python 3.10 and 3.12'



def colcon_build(tmp_path, interfaces: bool = False) -> None:
    """`colcon build` of a copy of the checkout under `tmp_path` (src/, build/, install/);
    with `interfaces`, hybrid_vla_interfaces too, as on a distribution (README)."""
    colcon = os.path.join(VENV_BIN, 'colcon')
    if not os.path.exists(colcon):
        pytest.fail('colcon is not installed in the virtualenv (make venv installs it)')
    src = tmp_path / 'src' / 'hybrid_vla_ros'
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        '.venv', '.git', 'build', 'install', 'log', 'logs', '*.egg-info', '__pycache__',
        'runs', '.pytest_cache', '.ruff_cache', 'data', '.cache', 'bench'))
    venv = os.path.dirname(VENV_BIN)
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ['PATH'],
               AMENT_PREFIX_PATH=venv, CMAKE_PREFIX_PATH=venv)
    bases = [str(tmp_path / 'src')] + ([str(src / 'interfaces')] if interfaces else [])
    result = subprocess.run(
        [colcon, 'build', '--base-paths', *bases,
         '--build-base', str(tmp_path / 'build'), '--install-base', str(tmp_path / 'install'),
         '--event-handlers', 'console_direct-'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_colcon_build_installs_share_and_executables(tmp_path):
    colcon_build(tmp_path)
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


# A sitecustomize that makes torch and transformers unimportable: a robot without them.
NO_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError(name + ' is not installed on this robot')
sys.meta_path.insert(0, _NoTorch())
"""


def test_node_set_runs_from_the_install_space_without_torch(tmp_path, tmp_path_factory):
    """colcon build of both packages, then the three nodes started from
    install/lib/hybrid_vla_ros (as `ros2 run` starts them) with the install space first on
    the paths (as `source install/setup.bash` sets them) and torch absent: they come up,
    exchange features over hybrid_vla_interfaces/Features and the policy acts."""
    from ros_support import FakeRobot, ros_env, tiny_checkpoint
    checkpoint = tiny_checkpoint(tmp_path_factory)
    colcon_build(tmp_path, interfaces=True)
    prefix = tmp_path / 'install' / 'hybrid_vla_ros'
    site = next(prefix.glob('lib/python3*/site-packages'))
    interfaces = tmp_path / 'install' / 'hybrid_vla_interfaces'
    interfaces_site = next(interfaces.glob('lib/python3*/site-packages'))
    assert (interfaces_site / 'hybrid_vla_interfaces' / 'msg' / '_features.py').is_file()
    blocker = tmp_path / 'no_torch'
    blocker.mkdir()
    (blocker / 'sitecustomize.py').write_text(NO_TORCH)
    run_env = ros_env(PYTHONPATH=os.pathsep.join([str(blocker), str(site),
                                                  str(interfaces_site)]),
                      LD_LIBRARY_PATH=os.pathsep.join([str(interfaces / 'lib'), os.environ.get(
                          'LD_LIBRARY_PATH', '')]),
                      AMENT_PREFIX_PATH=os.pathsep.join([str(prefix), str(interfaces)]))
    where = subprocess.run([sys.executable, '-c', 'import hybrid_vla_ros, sys; '
                            'import hybrid_vla_interfaces as i; print(hybrid_vla_ros.__file__);'
                            ' print(i.__file__); import torch'],
                           capture_output=True, text=True, env=run_env, timeout=60,
                           cwd=tmp_path)
    ours, theirs = where.stdout.split()
    assert ours.startswith(str(site)) and theirs.startswith(str(interfaces_site)), \
        where.stdout   # the installed copies, not the checkout's or the venv's
    assert 'is not installed on this robot' in where.stderr
    from hybrid_vla_ros.ros.tools.driver import GraphDriver
    robot = FakeRobot(rate=20.0)
    driver = GraphDriver(name='install_test_user')
    procs = []
    try:
        for name in ('perception', 'instruction', 'policy'):
            exe = prefix / 'lib' / 'hybrid_vla_ros' / f'{name}_node'
            args = [str(exe), '--ros-args', '-p', f'checkpoint:={checkpoint}',
                    '-p', 'diagnostics_period:=0.25']
            if name == 'policy':
                args += ['-p', 'autostart:=true', '-p', 'safety.action_min:=[-9.0,-9.0,-9.0,-9.0]',
                         '-p', 'safety.action_max:=[9.0,9.0,9.0,9.0]']
            log = open(tmp_path / f'{name}.log', 'w')
            procs.append((subprocess.Popen(args, env=run_env, stdout=log, cwd=tmp_path,
                                           stderr=subprocess.STDOUT), log))
        assert driver.wait_status('/perception', lambda s: 'encoding' in s.message, 60), \
            (tmp_path / 'perception.log').read_text()[-2000:]
        assert driver.say('open the drawer')
        assert driver.wait_status('/policy', lambda s: 'acting' in s.message, 60), \
            (tmp_path / 'policy.log').read_text()[-3000:]
        assert all(p.poll() is None for p, _ in procs)
        log = (tmp_path / 'policy.log').read_text()
        assert 'Traceback' not in log and 'torch' not in log
    finally:
        for proc, log in procs:
            proc.send_signal(2)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        driver.close()
        robot.close()
