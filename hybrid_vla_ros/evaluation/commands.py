"""``hybrid-vla eval-sim`` (closed loop in the built-in simulator) and ``hybrid-vla eval-bag``
(offline against recorded bags)."""

from __future__ import annotations

from ..command_registry import command


def _eval_sim_args(p) -> None:
    p.add_argument('--checkpoint', required=True, help='checkpoint directory (exported)')
    p.add_argument('--suite', default='metaworld', choices=('metaworld', 'mt50', 'arm'),
                   help='built-in suite (default metaworld)')
    p.add_argument('--tasks', nargs='+', help='only these tasks (default: the whole suite); '
                   'on mt50 also tiers: easy, medium, hard, very-hard')
    p.add_argument('--episodes', type=int, default=10,
                   help='episodes per task and per phrasing set (default 10)')
    p.add_argument('--seed', type=int, default=1000,
                   help='first episode seed (default 1000, away from training seeds)')
    p.add_argument('--backend', default='onnxruntime', help='torch | onnxruntime | tensorrt')
    p.add_argument('--scheduler', choices=('replan', 'ensemble'),
                   help="chunk scheduling (default: the policy node's `scheduler` in --params)")
    p.add_argument('--replan-every', type=int,
                   help="replan: ticks per chunk, 1..K (default: the policy node's "
                        "`replan_every` in --params)")
    p.add_argument('--params', metavar='FILE',
                   help="ROS 2 parameter file of the policy node whose safety limits filter "
                        "every action and whose chunk scheduling runs, as on the robot "
                        "(default: the suite's simulated robot, config/ros/sim_demo.yaml, "
                        'sim_mt50.yaml or sim_arm.yaml)')
    p.add_argument('--fresh', action='store_true',
                   help='ignore the tasks a stopped run with the same settings already '
                        'finished (by default a rerun continues where it stopped)')
    p.add_argument('--no-expert', action='store_true',
                   help='skip the scripted expert on the same seeds')
    p.add_argument('--blank-instruction', action='store_true',
                   help='give the policy an empty instruction (language ablation)')
    p.add_argument('--start-jitter', type=float, default=0.0, metavar='METRES',
                   help='metaworld: start the hand up to this far from its home pose on each '
                        'axis, drawn from the episode seed (robustness to where the arm '
                        'starts; at most 0.1; default 0 = always home)')
    p.add_argument('--workers', type=int, default=1,
                   help='tasks evaluated at once, each in its own process with a one-thread '
                        'backend (default 1; up to one per CPU core); results do not change')
    p.add_argument('--out', help='directory for eval_sim.json / eval_sim.md '
                                 '(default CHECKPOINT/eval)')


@command('eval-sim', 'closed-loop success per task in the built-in simulator, for training '
         'and held-out phrasings, beside the scripted expert', _eval_sim_args)
def eval_sim(args) -> int:
    """Run the evaluation, print and write the report."""
    import sys
    from pathlib import Path

    from ..sim.commands import check_start_jitter_argument
    from ..sim.policy_step import sim_control_settings, sim_parameter_file
    from .closed_loop import PARTIAL_FILE, evaluate, markdown_table, write_report
    check_start_jitter_argument(args.suite, args.start_jitter)
    out_dir = Path(args.out or Path(args.checkpoint) / 'eval')
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / PARTIAL_FILE
    if args.fresh and partial.exists():
        partial.unlink()
    params = args.params or sim_parameter_file(args.suite)
    control = sim_control_settings(params, args.scheduler, args.replan_every)
    doc = evaluate(args.checkpoint, args.suite, args.tasks, args.episodes, args.seed,
                   args.backend, control,
                   not args.no_expert, args.blank_instruction, workers=args.workers,
                   start_jitter=args.start_jitter, params_file=params,
                   resume_file=partial)
    out = write_report(doc, out_dir)
    if not (doc['failed'] or doc['interrupted']):
        partial.unlink(missing_ok=True)  # complete: a rerun evaluates again
    print(markdown_table(doc))
    print(f'wrote {out}/eval_sim.json and eval_sim.md')
    if doc['failed']:
        print(f'hybrid-vla eval-sim: error: {doc["failed"]} The {len(doc["tasks"])} tasks '
              'that finished are in the report.', file=sys.stderr)
        return 1
    if doc['interrupted']:
        print(f'hybrid-vla eval-sim: interrupted after {len(doc["tasks"])} of '
              f'{len(doc["tasks_requested"])} tasks', file=sys.stderr)
        return 130
    return 0


def _eval_bag_args(p) -> None:
    p.add_argument('--checkpoint', required=True, help='checkpoint directory (exported for '
                   'onnxruntime / tensorrt)')
    p.add_argument('--bags', nargs='+', required=True,
                   help='rosbag2 directories, or directories containing them')
    p.add_argument('--out', required=True, help='report directory (created)')
    p.add_argument('--backend', default='onnxruntime', help='torch | onnxruntime | tensorrt '
                   '(default onnxruntime, what the nodes run)')
    p.add_argument('--topic-map', help='topic map YAML naming the bags\' topics (default: the '
                   'one the checkpoint was trained with)')
    p.add_argument('--instruction', help='fixed instruction for bags without an instruction '
                   'topic (replaces the topic map\'s instruction source)')
    p.add_argument('--threads', type=int, default=1, help='backend threads (default 1)')
    p.add_argument('--batch', type=int, default=1, help='steps per inference call (default 1 '
                   '= exactly what the policy node runs; larger is faster)')
    p.add_argument('--gripper-dim', type=int, help='action index of the gripper (default: the '
                   'first action named *grip*; -1 = none)')
    p.add_argument('--gripper-threshold', type=float,
                   help='gripper command above this counts as closed (default: the mean '
                        'gripper command of the training data, between its two levels)')
    p.add_argument('--plot-episodes', type=int, default=4,
                   help='trajectory plots for the first N bags (default 4)')
    p.add_argument('--input-reliance', action='store_true',
                   help='also score each bag with the proprioception, then the images, frozen '
                   'at step 0: does the policy look at the camera or at its own hand? '
                   '(three times the inference)')


@command('eval-bag', 'score a policy offline against the commands recorded in rosbags: '
         'MAE/RMSE per dimension, error against chunk horizon, gripper agreement; JSON, CSV, '
         'PNG plots and a report', _eval_bag_args)
def eval_bag(args) -> int:
    """Score, write the report, print the summary."""
    from .bag_eval import evaluate
    doc, _ = evaluate(args.checkpoint, args.bags, args.out, args.backend, args.topic_map,
                   args.instruction, args.threads, args.batch, args.gripper_dim,
                   args.gripper_threshold, args.plot_episodes,
                   input_reliance=args.input_reliance)
    o = doc['overall']
    print(f'{len(doc["episodes"])} bags, {o["steps"]} steps scored, {len(doc["skipped"])} '
          f'skipped')
    for name, m in o['next_action'].items():
        print(f'  {name:<28} MAE {m["mae"]:.4g}  RMSE {m["rmse"]:.4g}  '
              f'(normalized {m["mae_normalized"]:.3f} / {m["rmse_normalized"]:.3f})')
    if o['gripper_agreement'] is not None:
        print(f'  gripper agreement {o["gripper_agreement"]:.1%}')
    for name, value in doc.get('input_reliance', {}).items():
        print(f'  input reliance: {name:<20} next-action MAE / std {value:.3f}')
    print(f'wrote {args.out}/report.md, eval_bag.json, metrics.csv, steps.csv, plots/')
    return 130 if doc['interrupted'] else 0
