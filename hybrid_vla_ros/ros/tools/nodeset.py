"""The ONE declaration of which nodes run, with which parameter files and overrides.

Both bring-up paths read it, so they cannot drift apart:

- ``launch/hybrid_vla.launch.py`` and ``launch/sim_demo.launch.py`` (real ``ros2 launch``,
  through `launch_support`) turn every `ProcessSpec` into a ``launch_ros.actions.Node``
  with `launch_node_kwargs`;
- ``hybrid-vla bringup`` (`bringup.Supervisor`) turns the same specs into
  ``python -m <module> --ros-args ...`` processes with `ProcessSpec.command`.

Node sets: ``robot`` (perception, instruction, policy — for a real robot) and ``sim``
(the same three plus sim_robot). Launch arguments (`ARGUMENTS`) are strings, as in
``ros2 launch``; an empty value leaves the parameter file's value alone.

No rclpy or launch import here: the launch files, the CLI's help and the tests import it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ...paths import PACKAGE, data_root
from ...schema import ConfigError



@dataclasses.dataclass(frozen=True)
class NodeDecl:
    """One node of a set: its name, console script (``ros2 run`` / launch) and module
    (``python -m``, what bringup runs)."""

    name: str
    executable: str
    module: str


PERCEPTION = NodeDecl('perception', 'perception_node', 'hybrid_vla_ros.ros.perception_node')
INSTRUCTION = NodeDecl('instruction', 'instruction_node', 'hybrid_vla_ros.ros.instruction_node')
POLICY = NodeDecl('policy', 'policy_node', 'hybrid_vla_ros.ros.policy_node')
SIM_ROBOT = NodeDecl('sim_robot', 'sim_robot_node', 'hybrid_vla_ros.ros.tools.sim_robot_node')

NODE_SETS: Dict[str, Tuple[NodeDecl, ...]] = {
    'robot': (PERCEPTION, INSTRUCTION, POLICY),
    'sim': (SIM_ROBOT, PERCEPTION, INSTRUCTION, POLICY),
}
PARAMS_FILES = {'robot': 'robot.yaml', 'sim': 'sim_demo.yaml'}
# SROS2: every node's enclave is ENCLAVE_ROOT/<node name> (security.py writes their policy).
ENCLAVE_ROOT = '/hybrid_vla'
# Seconds between a node's death and its restart (bringup and the launch files).
RESPAWN_DELAY = 2.0
MODEL_NODES = ('perception', 'instruction', 'policy')


@dataclasses.dataclass(frozen=True)
class Argument:
    """A launch argument (and the matching ``hybrid-vla bringup --<name>`` option).

    Attributes:
        name: argument name.
        description: help text.
        params: (node, parameter) pairs it sets when non-empty.
        kind: how the string becomes the parameter value: ``string``, ``bool``, ``int``.
        sets: node sets that have it (empty: all).

    """

    name: str
    description: str
    params: Tuple[Tuple[str, str], ...] = ()
    kind: str = 'string'
    sets: Tuple[str, ...] = ()


ARGUMENTS: Tuple[Argument, ...] = (
    Argument('checkpoint', 'checkpoint directory with onnx/ (default: the shipped '
                           'models/default)',
             tuple((n, 'checkpoint') for n in MODEL_NODES)),
    Argument('params_file', 'parameter YAML for every node (default: config/ros/robot.yaml '
                            'or config/ros/sim_demo.yaml)'),
    Argument('backend', 'inference backend: onnxruntime, torch or tensorrt',
             tuple((n, 'backend') for n in MODEL_NODES)),
    Argument('command_mode', 'policy commands: twist, pose, joint_trajectory or joint_forward',
             (('policy', 'command_mode'),)),
    Argument('autostart', 'true: the policy is enabled at start (else call /policy/enable)',
             (('policy', 'autostart'),), 'bool'),
    Argument('dry_run', 'true: commands go to ~/debug/<topic> only',
             (('policy', 'dry_run'),), 'bool'),
    Argument('namespace', 'namespace of every node (and so of every relative topic)'),
    Argument('camera_remaps', 'perception image topic remaps, FROM:=TO separated by commas '
                              '(e.g. front/image_raw:=/camera/color/image_raw)'),
    Argument('remaps', 'remaps applied to every node, FROM:=TO separated by commas '
                       '(e.g. joint_states:=/robot/joint_states)'),
    Argument('keystore', 'SROS2 keystore directory: each node runs in its enclave '
                         '/hybrid_vla/<node> with ROS_SECURITY_ENABLE=true and '
                         'ROS_SECURITY_STRATEGY=Enforce (docs/ros.md, "Security"); empty: off'),
    Argument('task', 'simulated task (sim set)', (('sim_robot', 'task'),), sets=('sim',)),
    Argument('sim_mode', 'simulator stepping: lockstep or realtime (sim set)',
             (('sim_robot', 'mode'),), sets=('sim',)),
)


def arguments(set_name: str) -> List[Argument]:
    """The launch arguments of a node set."""
    _check_set(set_name)
    return [a for a in ARGUMENTS if not a.sets or set_name in a.sets]


def _check_set(set_name: str) -> None:
    if set_name not in NODE_SETS:
        raise ConfigError(f'node set {set_name!r} is unknown; choose one of '
                          f'{", ".join(NODE_SETS)}')


def config_path(name: str) -> str:
    """Absolute path of config/ros/<name>."""
    return str(data_root() / 'config' / 'ros' / name)


def default_checkpoint() -> str:
    """The shipped default policy, models/default (it may not exist yet)."""
    return str(data_root() / 'models' / 'default')


def defaults(set_name: str) -> Dict[str, str]:
    """Default launch argument values of a set."""
    values = {a.name: '' for a in arguments(set_name)}
    values['checkpoint'] = default_checkpoint()
    values['params_file'] = config_path(PARAMS_FILES[set_name])
    return values


def _typed(arg: Argument, text: str) -> Any:
    if arg.kind == 'bool':
        low = text.strip().lower()
        if low not in ('true', 'false', '1', '0'):
            raise ConfigError(f'argument {arg.name}: {text!r} is not true or false')
        return low in ('true', '1')
    if arg.kind == 'int':
        return int(text)
    return text


def parse_remaps(text: str, what: str) -> List[Tuple[str, str]]:
    """'a:=b,c:=d' -> [('a', 'b'), ('c', 'd')]; ConfigError for a malformed item."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(','))):
        src, sep, dst = item.partition(':=')
        if not sep or not src or not dst:
            raise ConfigError(f'{what}: {item!r} is not FROM:=TO')
        out.append((src, dst))
    return out


@dataclasses.dataclass
class ProcessSpec:
    """One node process to start.

    Attributes:
        name: node name.
        executable: console script (launch), module: python module (bringup).
        namespace: node namespace ('' for none).
        params_files: parameter YAML files, in order.
        overrides: parameter name -> typed value, applied after the files.
        remaps: (from, to) topic remappings.
        keystore: SROS2 keystore directory ('' = security off); the node then runs in
            enclave `enclave`.

    """

    name: str
    executable: str
    module: str
    namespace: str
    params_files: List[str]
    overrides: Dict[str, Any]
    remaps: List[Tuple[str, str]]
    keystore: str = ''

    @property
    def enclave(self) -> str:
        """The node's SROS2 enclave, ``/hybrid_vla/<name>`` ('' when security is off)."""
        return f'{ENCLAVE_ROOT}/{self.name}' if self.keystore else ''

    def environment(self) -> Dict[str, str]:
        """Environment variables the node needs on top of the caller's (SROS2)."""
        if not self.keystore:
            return {}
        return {'ROS_SECURITY_KEYSTORE': self.keystore, 'ROS_SECURITY_ENABLE': 'true',
                'ROS_SECURITY_STRATEGY': 'Enforce'}

    @property
    def fully_qualified_name(self) -> str:
        """``/namespace/name`` of the node."""
        ns = _absolute(self.namespace).rstrip('/') if self.namespace else ''
        return f'{ns}/{self.name}'

    def overrides_yaml(self) -> str:
        """The overrides as a parameter file keyed by the node's fully qualified name.

        Why a file and not ``-p`` / a launch dict: those are ``/**`` entries, and ROS 2 lets
        the entry that appears *last* among a node's matching keys win, so a ``/**:``
        section followed by a ``/**/<node>:`` section in the parameter file would beat them.
        A file passed after the others, with a key none of them uses, always wins.
        """
        import yaml
        return yaml.safe_dump({self.fully_qualified_name: {'ros__parameters':
                                                           dict(self.overrides)}},
                              default_flow_style=False, sort_keys=True)

    def parameter_files(self, directory: str) -> List[str]:
        """`params_files` plus, when there are overrides, ``<directory>/<name>.overrides.yaml``
        (written now)."""
        files = list(self.params_files)
        if self.overrides:
            path = Path(directory) / f'{self.name}.overrides.yaml'
            path.write_text(self.overrides_yaml(), encoding='utf-8')
            files.append(str(path))
        return files

    def ros_args(self, directory: str) -> List[str]:
        """The ``--ros-args`` part of the command line (the override file goes to
        `directory`)."""
        args = ['--ros-args', '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:={_absolute(self.namespace)}']
        for path in self.parameter_files(directory):
            args += ['--params-file', path]
        for src, dst in self.remaps:
            args += ['-r', f'{src}:={dst}']
        if self.enclave:
            args += ['--enclave', self.enclave]
        return args

    def command(self, directory: str, python: Optional[str] = None) -> List[str]:
        """``python -m module --ros-args ...``: what bringup runs."""
        return [python or sys.executable, '-m', self.module, *self.ros_args(directory)]


def _absolute(namespace: str) -> str:
    return namespace if namespace.startswith('/') else '/' + namespace


def process_specs(set_name: str, values: Optional[Mapping[str, str]] = None,
                  extra: Optional[Mapping[str, Mapping[str, Any]]] = None
                  ) -> List[ProcessSpec]:
    """The processes of `set_name` for launch argument `values` (missing: defaults).

    Args:
        set_name: ``robot`` or ``sim``.
        values: launch argument name -> string value; '' leaves a parameter to the file.
        extra: node name -> {parameter: typed value} applied last (bringup ``--set``,
            the demo and benchmark drivers).

    Raises:
        ConfigError: unknown set, argument or node name, or a malformed value.

    """
    resolved = defaults(set_name)
    known = {a.name: a for a in arguments(set_name)}
    for name, value in (values or {}).items():
        if name not in known:
            raise ConfigError(f'argument {name!r} is unknown for set {set_name}; known: '
                              f'{", ".join(known)}')
        if value is not None and str(value) != '':
            resolved[name] = str(value)
    nodes = NODE_SETS[set_name]
    names = {n.name for n in nodes}
    for node in (extra or {}):
        if node not in names:
            raise ConfigError(f'node {node!r} is not in set {set_name} '
                              f'({", ".join(sorted(names))})')
    overrides: Dict[str, Dict[str, Any]] = {n.name: {} for n in nodes}
    for arg in known.values():
        text = resolved.get(arg.name, '')
        if text == '':
            continue
        for node, param in arg.params:
            if node in overrides:
                overrides[node][param] = _typed(arg, text)
    for node, params in (extra or {}).items():
        overrides[node].update(params)
    common = parse_remaps(resolved.get('remaps', ''), 'remaps')
    camera = parse_remaps(resolved.get('camera_remaps', ''), 'camera_remaps')
    params_file = resolved['params_file']
    if not os.path.isfile(params_file):
        raise ConfigError(f'parameter file {params_file} does not exist')
    keystore = resolved.get('keystore', '')
    if keystore and not os.path.isdir(keystore):
        raise ConfigError(f'keystore {keystore} is not a directory: create it with `ros2 '
                          'security create_keystore` (docs/ros.md, "Security")')
    return [ProcessSpec(name=n.name, executable=n.executable, module=n.module,
                        namespace=resolved.get('namespace', ''), params_files=[params_file],
                        overrides=overrides[n.name],
                        remaps=common + (camera if n.name == 'perception' else []),
                        keystore=os.path.abspath(keystore) if keystore else '')
            for n in nodes]


def launch_node_kwargs(spec: ProcessSpec, directory: str) -> Dict[str, Any]:
    """Keyword arguments of ``launch_ros.actions.Node`` for a spec: the same parameter files
    (overrides written to `directory`) and remappings bringup passes on the command line."""
    kwargs = {'package': PACKAGE, 'executable': spec.executable, 'name': spec.name,
              'namespace': spec.namespace, 'output': 'screen',
              'parameters': spec.parameter_files(directory),
              'remappings': list(spec.remaps),
              # A node that dies is started again, as `hybrid-vla bringup` does.
              'respawn': True, 'respawn_delay': RESPAWN_DELAY}
    if spec.enclave:
        kwargs['ros_arguments'] = ['--enclave', spec.enclave]
        kwargs['additional_env'] = spec.environment()
    return kwargs


def parse_sets(items: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """bringup ``--set node.param=value`` items -> {node: {param: YAML-typed value}}."""
    import yaml
    out: Dict[str, Dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition('=')
        node, dot, param = key.partition('.')
        if not sep or not dot or not node or not param:
            raise ConfigError(f'--set {item!r}: expected NODE.PARAM=VALUE')
        out.setdefault(node, {})[param] = yaml.safe_load(text) if text != '' else ''
    return out
