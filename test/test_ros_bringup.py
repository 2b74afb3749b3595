"""The launch files and `hybrid-vla bringup` start the same node set from one declaration;
the documentation names every parameter and launch argument."""

import contextlib
import io
import os
import runpy
import sys
import types

import subprocess

import pytest
import yaml

from conftest import REPO
from ros_support import HYBRID_VLA

from hybrid_vla_ros.ros.tools import nodeset

LAUNCH_FILES = {'robot': 'launch/hybrid_vla.launch.py', 'sim': 'launch/sim_demo.launch.py'}


def _stub_launch(monkeypatch):
    """Minimal stand-ins for `launch` and `launch_ros` (not installable from PyPI) that
    record what a launch file builds."""
    class LaunchDescription:
        def __init__(self, entities):
            self.entities = list(entities)

    class DeclareLaunchArgument:
        def __init__(self, name, default_value='', description=''):
            self.name, self.default_value, self.description = name, default_value, description

    class OpaqueFunction:
        def __init__(self, function):
            self.function = function

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    class Node:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    mods = {
        'launch': types.SimpleNamespace(LaunchDescription=LaunchDescription),
        'launch.actions': types.SimpleNamespace(DeclareLaunchArgument=DeclareLaunchArgument,
                                                OpaqueFunction=OpaqueFunction),
        'launch.substitutions': types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        'launch_ros': types.SimpleNamespace(),
        'launch_ros.actions': types.SimpleNamespace(Node=Node),
    }
    for name, module in mods.items():
        monkeypatch.setitem(sys.modules, name, module)


def _launch(monkeypatch, set_name, overrides):
    _stub_launch(monkeypatch)
    path = os.path.join(REPO, LAUNCH_FILES[set_name])
    description = runpy.run_path(path)['generate_launch_description']()
    declared = [e for e in description.entities if hasattr(e, 'default_value')]
    context = {d.name: d.default_value for d in declared}
    context.update(overrides)
    opaque = [e for e in description.entities if hasattr(e, 'function')]
    assert len(opaque) == 1
    return declared, opaque[0].function(context)


def _bringup_print(set_name, overrides):
    from hybrid_vla_ros.cli import main
    argv = ['bringup', set_name, '--print']
    for k, v in overrides.items():
        argv += [f'--{k.replace("_", "-")}', v]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


OVERRIDES = {'checkpoint': '/ckpt/policy', 'backend': 'torch', 'autostart': 'true',
             'namespace': 'robot1', 'camera_remaps': 'front/image_raw:=/cam/image',
             'remaps': 'joint_states:=/arm/joint_states'}


@pytest.mark.parametrize('set_name', ['robot', 'sim'])
def test_launch_files_and_bringup_start_the_same_nodes(monkeypatch, set_name):
    declared, nodes = _launch(monkeypatch, set_name, OVERRIDES)
    assert [d.name for d in declared] == [a.name for a in nodeset.arguments(set_name)]
    specs = nodeset.process_specs(set_name, OVERRIDES)
    assert [n.kwargs['name'] for n in nodes] == [s.name for s in specs]
    printed = _bringup_print(set_name, OVERRIDES)
    for node, spec in zip(nodes, specs, strict=True):
        kw = node.kwargs
        assert kw['package'] == 'hybrid_vla_ros' and kw['executable'] == spec.executable
        assert kw['namespace'] == 'robot1' and kw['remappings'] == spec.remaps
        params_file, *overrides = kw['parameters']
        assert params_file == nodeset.config_path(nodeset.PARAMS_FILES[set_name])
        launch_overrides = {}
        for path in overrides:
            with open(path, encoding='utf-8') as f:
                launch_overrides = yaml.safe_load(f)
        assert launch_overrides == (yaml.safe_load(spec.overrides_yaml())
                                    if spec.overrides else {})
        # bringup runs the matching module with the same files, overrides and remaps.
        line = next(ln for ln in printed.splitlines() if f'-m {spec.module} ' in ln)
        assert f'__node:={spec.name}' in line and '__ns:=/robot1' in line
        assert f'--params-file {params_file}' in line
        for src, dst in spec.remaps:
            assert f'{src}:={dst}' in line
    policy = next(s for s in specs if s.name == 'policy')
    assert policy.overrides == {'checkpoint': '/ckpt/policy', 'backend': 'torch',
                                'autostart': True}
    perception = next(s for s in specs if s.name == 'perception')
    assert ('front/image_raw', '/cam/image') in perception.remaps
    assert ('joint_states', '/arm/joint_states') in policy.remaps


def test_launch_files_hold_no_node_list_of_their_own():
    for set_name, rel in LAUNCH_FILES.items():
        text = open(os.path.join(REPO, rel), encoding='utf-8').read()
        assert f"launch_description('{set_name}')" in text
        code = text.split('def generate_launch_description', 1)[1]
        for decl in nodeset.NODE_SETS['sim']:
            assert decl.executable not in code and decl.module not in code
        # launch is imported inside the function only (not installable here)
        head = text.split('def generate_launch_description', 1)[0]
        assert 'import launch' not in head and 'from launch' not in head


def test_override_files_beat_the_parameter_file_sections(tmp_path):
    """Overrides are keyed by the node's fully qualified name and passed last, so they win
    over both the /** and the /**/<node> sections of the parameter file."""
    spec = nodeset.process_specs('sim', {'namespace': 'r1', 'task': 'drawer-close'})[0]
    files = spec.parameter_files(str(tmp_path))
    assert files[0].endswith('sim_demo.yaml')
    assert yaml.safe_load(open(files[1])) == {
        '/r1/sim_robot': {'ros__parameters': {'task': 'drawer-close'}}}


def test_bad_arguments_are_one_clear_line():
    from hybrid_vla_ros.schema import ConfigError
    with pytest.raises(ConfigError, match='not FROM:=TO'):
        nodeset.process_specs('robot', {'remaps': 'joint_states'})
    with pytest.raises(ConfigError, match="'x' is not true or false"):
        nodeset.process_specs('robot', {'autostart': 'x'})
    with pytest.raises(ConfigError, match='unknown for set robot'):
        nodeset.process_specs('robot', {'task': 'drawer-open'})
    with pytest.raises(ConfigError, match='NODE.PARAM=VALUE'):
        nodeset.parse_sets(['max_age=0.5'])
    assert nodeset.parse_sets(['policy.max_age=0.5', 'sim_robot.cameras=[front]']) == {
        'policy': {'max_age': 0.5}, 'sim_robot': {'cameras': ['front']}}


def test_parameter_files_load_and_only_set_declared_parameters():
    from hybrid_vla_ros.ros import parameters
    from hybrid_vla_ros.ros.tools.sim_parameters import SIM_ROBOT_PARAMS
    declared = {'perception': parameters.PERCEPTION_PARAMS,
                'instruction': parameters.INSTRUCTION_PARAMS,
                'policy': parameters.POLICY_PARAMS, 'sim_robot': SIM_ROBOT_PARAMS}
    for name in ('robot.yaml', 'sim_demo.yaml', 'sim_arm.yaml', 'sim_mt50.yaml'):
        doc = yaml.safe_load(open(os.path.join(REPO, 'config', 'ros', name)))
        for key, section in doc.items():
            params = _flatten(section['ros__parameters'])
            nodes = declared if key == '/**' else {key.split('/')[-1]: declared[
                key.split('/')[-1]]}
            known = {s.name for specs in nodes.values() for s in specs}
            assert set(params) <= known, (name, key, set(params) - known)


def _flatten(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_docs_name_every_parameter_argument_and_service():
    from hybrid_vla_ros.ros import parameters
    from hybrid_vla_ros.ros.tools.sim_parameters import SIM_ROBOT_PARAMS
    text = open(os.path.join(REPO, 'docs', 'ros.md'), encoding='utf-8').read()
    for specs in (parameters.PERCEPTION_PARAMS, parameters.INSTRUCTION_PARAMS,
                  parameters.POLICY_PARAMS, SIM_ROBOT_PARAMS):
        for spec in specs:
            assert f'`{spec.name}`' in text, f'docs/ros.md lacks parameter {spec.name}'
    for arg in nodeset.ARGUMENTS:
        assert f'`{arg.name}`' in text, f'docs/ros.md lacks launch argument {arg.name}'
    for name in ('~/enable', '~/reset', 'estop', 'vision_features', 'language_features',
                 'episode_result', 'hybrid-vla bringup', 'hybrid-vla say', 'make demo'):
        assert name in text, name


def test_keystore_puts_every_node_in_its_enclave(tmp_path):
    """SROS2: the keystore argument reaches each node's command line (--enclave) and
    environment (bringup) and the launch_ros.Node arguments (launch)."""
    keystore = tmp_path / 'keystore'
    keystore.mkdir()
    specs = nodeset.process_specs('robot', {'keystore': str(keystore)})
    for spec in specs:
        enclave = f'/hybrid_vla/{spec.name}'
        command = spec.command(str(tmp_path))
        assert command[command.index('--enclave') + 1] == enclave
        assert spec.environment() == {'ROS_SECURITY_KEYSTORE': str(keystore),
                                      'ROS_SECURITY_ENABLE': 'true',
                                      'ROS_SECURITY_STRATEGY': 'Enforce'}
        kwargs = nodeset.launch_node_kwargs(spec, str(tmp_path))
        assert kwargs['ros_arguments'] == ['--enclave', enclave]
        assert kwargs['additional_env']['ROS_SECURITY_KEYSTORE'] == str(keystore)
        assert kwargs['respawn'] is True and kwargs['respawn_delay'] > 0
    plain = nodeset.process_specs('robot', {})
    assert all('--enclave' not in s.command(str(tmp_path)) and not s.environment()
               for s in plain)
    from hybrid_vla_ros.schema import ConfigError
    with pytest.raises(ConfigError, match='is not a directory: create it with `ros2 security '
                                          'create_keystore`'):
        nodeset.process_specs('robot', {'keystore': str(tmp_path / 'missing')})


def _children(element):
    return [child.tag for child in element]


def test_security_policy_documents_have_the_dds_security_structure(tmp_path):
    """The permissions and governance follow the element order of the OMG DDS Security 1.1
    schemas, grant exactly the package's endpoints per enclave, and deny the rest."""
    import datetime
    import xml.etree.ElementTree as ET

    from hybrid_vla_ros.ros.tools import security
    r = subprocess.run([HYBRID_VLA, 'security-policy', '--out', str(tmp_path), '--domain',
                        '7'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for node in ('perception', 'instruction', 'policy'):
        root = ET.parse(tmp_path / 'permissions' / f'{node}.xml').getroot()
        assert root.tag == 'dds' and _children(root) == ['permissions']
        (grant,) = root.find('permissions')
        assert grant.attrib['name'] == f'/hybrid_vla/{node}'
        assert _children(grant) == ['subject_name', 'validity', 'allow_rule', 'default']
        assert grant.find('subject_name').text == f'CN=/hybrid_vla/{node}'
        validity = grant.find('validity')
        assert _children(validity) == ['not_before', 'not_after']
        start, end = (datetime.datetime.fromisoformat(v.text) for v in validity)
        assert start < end
        rule = grant.find('allow_rule')
        assert _children(rule) == ['domains', 'publish', 'subscribe']
        assert [i.text for i in rule.find('domains')] == ['7']
        published = [t.text for t in rule.find('publish').find('topics')]
        subscribed = [t.text for t in rule.find('subscribe').find('topics')]
        assert grant.find('default').text == 'DENY'
        assert 'rt/diagnostics' in published and 'rt/rosout' in published
        assert f'rq/{node}/change_stateRequest' in subscribed
        assert f'rr/{node}/get_stateReply' in published
        expected = security.dds_topics(security.endpoints(node))
        assert published == expected['publish'] and subscribed == expected['subscribe']
    policy = ET.parse(tmp_path / 'permissions' / 'policy.xml').getroot()
    published = [t.text for t in policy.find('permissions/grant/allow_rule/publish/topics')]
    assert 'rt/ee_command' in published and 'rt/policy/debug/ee_command' in published
    assert 'rr/policy/enableReply' in published
    subscribed = [t.text for t in policy.find('permissions/grant/allow_rule/subscribe/topics')]
    assert {'rt/vision_features', 'rt/language_features', 'rt/estop'} <= set(subscribed)
    perception = ET.parse(tmp_path / 'permissions' / 'perception.xml').getroot()
    subscribed = [t.text for t in perception.find(
        'permissions/grant/allow_rule/subscribe/topics')]
    assert 'rt/*/image_raw' in subscribed and 'rt/estop' not in subscribed
    governance = ET.parse(tmp_path / 'governance.xml').getroot()
    rule = governance.find('domain_access_rules/domain_rule')
    assert _children(rule)[:2] == ['domains', 'allow_unauthenticated_participants']
    assert rule.find('allow_unauthenticated_participants').text == 'false'
    topic_rule = rule.find('topic_access_rules/topic_rule')
    assert topic_rule.find('enable_write_access_control').text == 'true'
    sros2 = ET.parse(tmp_path / 'policy.xml').getroot()
    assert sros2.attrib['version'] == '0.2.0'
    enclaves = [e.attrib['path'] for e in sros2.find('enclaves')]
    assert enclaves == ['/hybrid_vla/perception', '/hybrid_vla/instruction',
                        '/hybrid_vla/policy']


def test_say_refuses_a_nul_and_the_heartbeat_rate_is_checked(capsys):
    from hybrid_vla_ros.cli import main
    # A command line cannot carry a NUL; the CLI function can (as a script would call it).
    assert main(['say', 'open the drawer\x00 and smash it']) == 2
    err = capsys.readouterr().err
    assert 'contains a NUL character' in err and "only 'open the drawer' would arrive" in err
    r = subprocess.run([HYBRID_VLA, 'estop-heartbeat', '--rate', '0.1'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and '--rate' in r.stderr and 'Traceback' not in r.stderr
