#!/usr/bin/env python3
"""Which phrasings does a policy fail on, and does its language encoder tell them apart?

Reads an ``eval_sim.json`` (from ``hybrid-vla eval-sim``) and prints, for every task, the
closed-loop success per phrasing (training and held-out). Beside each held-out phrasing
it prints the task whose *training* phrasings are nearest to it in the frozen MiniLM
sentence embedding (mean of the token states, cosine similarity, the best phrasing of each
task): when that nearest task is not the phrasing's own, the language encoder itself puts
the words closer to another task, and a policy built on it cannot be expected to follow
them — more training of the policy does not fix that, other training phrasings or another
language encoder would.

    .venv/bin/python scripts/phrasing_report.py models/default/eval/eval_sim.json
"""

import argparse
import collections
import json
import sys


def sentence_embeddings(texts):
    """(N,) strings -> (N, 384) float32 unit vectors: MiniLM mean-pooled token states (the
    policy's own `language.pool: mean` encoder)."""
    import torch

    from hybrid_vla_ros.model.hf import MINILM, tokenizer_file
    from hybrid_vla_ros.model.language import HFTextEncoder
    from hybrid_vla_ros.tokenizer import InstructionTokenizer
    encoder = HFTextEncoder(HFTextEncoder.Config(model=MINILM, pool='mean'), 32).eval()
    ids, mask = InstructionTokenizer(tokenizer_file(MINILM, 'language'), 32)(list(texts))
    with torch.no_grad():
        pooled = encoder(torch.from_numpy(ids), torch.from_numpy(mask))[:, 0]
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def nearest_tasks(suite, names):
    """held-out phrasing -> (nearest task, its similarity, own task's similarity)."""
    from hybrid_vla_ros.sim.tasks import get_task
    train = [(name, text) for name in names for text in get_task(suite, name).instructions]
    held = [(name, text) for name in names for text in get_task(suite, name).held_out]
    emb = sentence_embeddings([t for _, t in train] + [t for _, t in held])
    train_emb, held_emb = emb[:len(train)], emb[len(train):]
    out = {}
    for (own, text), vector in zip(held, held_emb, strict=True):
        best = collections.defaultdict(lambda: -1.0)
        for (name, _), other in zip(train, train_emb, strict=True):
            best[name] = max(best[name], float(vector @ other))
        top = max(best, key=best.get)
        out[text] = (top, best[top], best[own])
    return out


def main(argv=None) -> int:
    """Print the per-phrasing report; 2 when the JSON cannot be read."""
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('eval_json', help='eval_sim.json written by hybrid-vla eval-sim')
    args = p.parse_args(argv)
    try:
        doc = json.load(open(args.eval_json))
    except (OSError, ValueError) as exc:
        print(f'phrasing_report: cannot read {args.eval_json}: {exc}', file=sys.stderr)
        return 2
    names = list(doc['tasks'])
    near = nearest_tasks(doc['suite'], names)
    confused = 0
    for name in names:
        row = doc['tasks'][name]
        print(f'{name}')
        for split in ('train', 'held_out'):
            per = collections.defaultdict(list)
            for ep in row[split]['episodes']:
                per[ep['instruction']].append(ep['success'])
            for text, wins in per.items():
                line = f'  {split:8s} {sum(wins):3d}/{len(wins):<3d} {text!r}'
                if split == 'held_out' and text in near:
                    top, sim, own = near[text]
                    if top != name:
                        confused += 1
                        line += f'   MiniLM nearest: {top} ({sim:.2f} vs own {own:.2f})'
                print(line)
    print(f'{confused} of {len(near)} held-out phrasings are nearer to another task\'s '
          'training phrasings in the MiniLM sentence embedding')
    return 0


if __name__ == '__main__':
    sys.exit(main())
