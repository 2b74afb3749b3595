"""SROS2 artifacts for the three nodes: which topics and services each may use, as an SROS2
policy (the input of ``ros2 security create_permission``) and as the DDS Security
governance and permissions documents that command produces (before signing).

``hybrid-vla security-policy --out DIR`` writes them (docs/ros.md, "Security"). The
``ros2 security`` tool and the Fast DDS security plugins are not installable from PyPI
(measured: the PyPI Fast DDS says "This Fast DDS version doesn't have the security
libraries"), so the documents are generated here from the package's own endpoint list and
checked by the tests for the structure of the OMG DDS Security 1.1 schemas; signing them
and running with them needs a ROS 2 distribution.

Each node gets exactly what it uses: its own topics (relative names, resolved in the
node's namespace), ``/diagnostics``, ``/rosout``, ``/parameter_events``, the lifecycle
transition events, its parameter services and, for the managed nodes, the lifecycle
services; the policy adds ``~/enable``, ``~/reset``, the ``~/run_instruction`` action
(its services, feedback and status, the ``instruction`` it publishes and the ``task_done``
it reads) and its commands (every command mode's topic, its ``~/debug/`` twin and
``~/command_source``). Everything else is denied.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Dict, List
from xml.sax.saxutils import escape

from .nodeset import ENCLAVE_ROOT

# Per node: topics it publishes / subscribes, services it answers (relative or ~/ names).
_PARAMETER_SERVICES = ['~/describe_parameters', '~/get_parameter_types', '~/get_parameters',
                       '~/list_parameters', '~/set_parameters',
                       '~/set_parameters_atomically', '~/get_type_description']
_LIFECYCLE_SERVICES = ['~/change_state', '~/get_state', '~/get_available_states',
                       '~/get_available_transitions', '~/get_transition_graph']
_COMMON_PUBLISH = ['/diagnostics', '/rosout', '/parameter_events']
_COMMANDS = ['ee_command', 'ee_target', 'joint_command', 'forward_command', 'gripper_command']

ENDPOINTS: Dict[str, Dict[str, List[str]]] = {
    'perception': {
        'publish': ['vision_features', '~/transition_event'],
        'subscribe': ['*/image_raw'],
        'reply': _LIFECYCLE_SERVICES,
    },
    'instruction': {
        'publish': ['language_features', '~/transition_event'],
        'subscribe': ['instruction'],
        'reply': _LIFECYCLE_SERVICES,
    },
    'policy': {
        'publish': _COMMANDS + [f'~/debug/{t}' for t in _COMMANDS] + [
            '~/transition_event', '~/command_source', 'instruction',
            '~/run_instruction/_action/feedback', '~/run_instruction/_action/status'],
        'subscribe': ['vision_features', 'language_features', 'joint_states', 'ee_pose',
                      'estop', 'task_done'],
        'reply': _LIFECYCLE_SERVICES + ['~/enable', '~/reset',
                                        '~/run_instruction/_action/send_goal',
                                        '~/run_instruction/_action/cancel_goal',
                                        '~/run_instruction/_action/get_result'],
    },
}


def resolve(name: str, node: str, namespace: str = '/') -> str:
    """A relative (``vision_features``), private (``~/enable``) or absolute name ->
    its absolute ROS name for node `node` in `namespace`."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('/'):
        return name
    if name.startswith('~/'):
        return f'{ns}/{node}/{name[2:]}'
    return f'{ns}/{name}'


def endpoints(node: str, namespace: str = '/') -> Dict[str, List[str]]:
    """{'publish', 'subscribe', 'reply'} absolute ROS names of `node` (parameter services
    and the common topics included)."""
    spec = ENDPOINTS[node]
    return {'publish': sorted({resolve(n, node, namespace)
                               for n in spec['publish'] + _COMMON_PUBLISH}),
            'subscribe': sorted({resolve(n, node, namespace) for n in spec['subscribe']}),
            'reply': sorted({resolve(n, node, namespace)
                             for n in spec['reply'] + _PARAMETER_SERVICES})}


def dds_topics(names: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """ROS names -> DDS topic names as rmw mangles them: ``rt/`` topics, and for each
    service ``rq/<name>Request`` (subscribed) and ``rr/<name>Reply`` (published)."""
    publish = [f'rt{n}' for n in names['publish']] + [f'rr{n}Reply' for n in names['reply']]
    subscribe = [f'rt{n}' for n in names['subscribe']] + [f'rq{n}Request'
                                                          for n in names['reply']]
    return {'publish': sorted(publish), 'subscribe': sorted(subscribe)}


def sros2_policy(namespace: str = '/') -> str:
    """The SROS2 policy XML (version 0.2.0) of the three enclaves."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<policy version="0.2.0">',
             '  <enclaves>']
    ns = '/' + namespace.strip('/') if namespace.strip('/') else '/'
    for node in ENDPOINTS:
        names = endpoints(node, namespace)
        lines += [f'    <enclave path="{ENCLAVE_ROOT}/{node}">', '      <profiles>',
                  f'        <profile ns="{ns}" node="{node}">']
        for kind, tag, mode in (('publish', 'topics', 'publish'),
                                ('subscribe', 'topics', 'subscribe'),
                                ('reply', 'services', 'reply')):
            item = tag[:-1]
            lines.append(f'          <{tag} {mode}="ALLOW">')
            lines += [f'            <{item}>{escape(n)}</{item}>' for n in names[kind]]
            lines.append(f'          </{tag}>')
        lines += ['        </profile>', '      </profiles>', '    </enclave>']
    lines += ['  </enclaves>', '</policy>']
    return '\n'.join(lines) + '\n'


def permissions(node: str, domain: int, namespace: str = '/', years: int = 10) -> str:
    """The DDS Security permissions document of `node`'s enclave (unsigned): one grant for
    subject ``CN=<enclave>``, allow rules for exactly its topics in `domain`, default
    DENY."""
    enclave = f'{ENCLAVE_ROOT}/{node}'
    topics = dds_topics(endpoints(node, namespace))
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0,
                                                                 tzinfo=None)
    end = start + datetime.timedelta(days=365 * years)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/'
             'omg_shared_ca_permissions.xsd">',
             '  <permissions>', f'    <grant name="{enclave}">',
             f'      <subject_name>CN={enclave}</subject_name>',
             '      <validity>', f'        <not_before>{start.isoformat()}</not_before>',
             f'        <not_after>{end.isoformat()}</not_after>', '      </validity>',
             '      <allow_rule>', '        <domains>', f'          <id>{domain}</id>',
             '        </domains>']
    for kind in ('publish', 'subscribe'):
        lines += [f'        <{kind}>', '          <topics>']
        lines += [f'            <topic>{escape(t)}</topic>' for t in topics[kind]]
        lines += ['          </topics>', f'        </{kind}>']
    lines += ['      </allow_rule>', '      <default>DENY</default>', '    </grant>',
              '  </permissions>', '</dds>']
    return '\n'.join(lines) + '\n'


def governance(domain: int) -> str:
    """The DDS Security governance document: authenticated participants only, access
    control on every topic, discovery, liveliness and data protected (ENCRYPT)."""
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="http://www.omg.org/spec/DDS-SECURITY/20170901/omg_shared_ca_governance.xsd">
  <domain_access_rules>
    <domain_rule>
      <domains>
        <id>{domain}</id>
      </domains>
      <allow_unauthenticated_participants>false</allow_unauthenticated_participants>
      <enable_join_access_control>true</enable_join_access_control>
      <discovery_protection_kind>ENCRYPT</discovery_protection_kind>
      <liveliness_protection_kind>ENCRYPT</liveliness_protection_kind>
      <rtps_protection_kind>SIGN</rtps_protection_kind>
      <topic_access_rules>
        <topic_rule>
          <topic_expression>*</topic_expression>
          <enable_discovery_protection>true</enable_discovery_protection>
          <enable_liveliness_protection>true</enable_liveliness_protection>
          <enable_read_access_control>true</enable_read_access_control>
          <enable_write_access_control>true</enable_write_access_control>
          <metadata_protection_kind>ENCRYPT</metadata_protection_kind>
          <data_protection_kind>ENCRYPT</data_protection_kind>
        </topic_rule>
      </topic_access_rules>
    </domain_rule>
  </domain_access_rules>
</dds>
'''


def write_artifacts(out, domain: int, namespace: str = '/') -> List[Path]:
    """Write policy.xml, governance.xml and permissions/<node>.xml into `out`; the paths."""
    out = Path(out)
    (out / 'permissions').mkdir(parents=True, exist_ok=True)
    written = [out / 'policy.xml', out / 'governance.xml']
    written[0].write_text(sros2_policy(namespace), encoding='utf-8')
    written[1].write_text(governance(domain), encoding='utf-8')
    for node in ENDPOINTS:
        path = out / 'permissions' / f'{node}.xml'
        path.write_text(permissions(node, domain, namespace), encoding='utf-8')
        written.append(path)
    return written
