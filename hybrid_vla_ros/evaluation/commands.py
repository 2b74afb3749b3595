"""``hybrid-vla eval-sim``: closed-loop evaluation in the built-in simulator."""

from __future__ import annotations

from ..cli import command


def _eval_sim_args(p) -> None:
    p.add_argument('--checkpoint', required=True, help='checkpoint directory (exported)')
    p.add_argument('--suite', default='metaworld', help='built-in suite (default metaworld)')
    p.add_argument('--tasks', nargs='+', help='only these tasks (default: the whole suite)')
    p.add_argument('--episodes', type=int, default=10,
                   help='episodes per task and per phrasing set (default 10)')
    p.add_argument('--seed', type=int, default=1000,
                   help='first episode seed (default 1000, away from training seeds)')
    p.add_argument('--backend', default='onnxruntime', help='torch | onnxruntime | tensorrt')
    p.add_argument('--scheduler', default='replan', choices=('replan', 'ensemble'),
                   help='chunk scheduling (default replan)')
    p.add_argument('--replan-every', type=int, default=4, help='replan: ticks per chunk')
    p.add_argument('--no-expert', action='store_true',
                   help='skip the scripted expert on the same seeds')
    p.add_argument('--blank-instruction', action='store_true',
                   help='give the policy an empty instruction (language ablation)')
    p.add_argument('--out', help='directory for eval_sim.json / eval_sim.md '
                                 '(default CHECKPOINT/eval)')


@command('eval-sim', 'closed-loop success per task in the built-in simulator, for training '
         'and held-out phrasings, beside the scripted expert', _eval_sim_args)
def eval_sim(args) -> int:
    """Run the evaluation, print and write the report."""
    from pathlib import Path

    from .closed_loop import evaluate, markdown_table, write_report
    doc = evaluate(args.checkpoint, args.suite, args.tasks, args.episodes, args.seed,
                   args.backend, args.scheduler, args.replan_every, not args.no_expert,
                   args.blank_instruction)
    out = write_report(doc, args.out or Path(args.checkpoint) / 'eval')
    print(markdown_table(doc))
    print(f'wrote {out}/eval_sim.json and eval_sim.md')
    return 0
