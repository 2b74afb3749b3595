"""Writing an eval-bag result: JSON, CSV, PNG plots and a Markdown report page.

Files written under the output directory:

- ``eval_bag.json``: settings, overall and per-episode metrics, skipped bags, plot index
- ``metrics.csv``: one row per (scope, section, action dimension): MAE / RMSE in units and
  normalized; scope is ``overall`` or a bag path
- ``steps.csv``: one row per (bag, step, dimension): stamp, recorded and predicted first
  action of the chunk
- ``horizon.csv``: normalized error against chunk index k, overall
- ``plots/trajectories_NN.png`` (one panel per action dimension: recorded vs predicted),
  ``plots/error_histograms.png`` (one panel per dimension), ``plots/horizon.png``
- ``report.md``: the page that ties them together
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from .bag_eval import EpisodeScore

SECTIONS = ('next_action', 'chunk')


def _plt():
    import matplotlib
    matplotlib.use('Agg')  # files only; never a display
    import matplotlib.pyplot as plt
    return plt


def _grid(n: int):
    cols = min(n, 2)
    return (n + cols - 1) // cols, cols


def plot_trajectories(score: EpisodeScore, names: Sequence[str], path: Path) -> List[str]:
    """Recorded vs predicted (first action of each chunk) per action dimension against
    time (s from the episode's first step); returns the panel titles."""
    plt = _plt()
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False)
    t = score.stamps - score.stamps[0]
    titles = []
    for a, name in enumerate(names):
        ax = axes[a // cols][a % cols]
        ax.plot(t, score.recorded[:, 0, a], label='recorded', color='black', lw=1.5)
        ax.plot(t, score.predicted[:, 0, a], label='predicted', color='tab:orange', lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('time (s)', fontsize=8)
        ax.tick_params(labelsize=7)
        titles.append(name)
    for extra in range(len(names), rows * cols):
        axes[extra // cols][extra % cols].axis('off')
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f'{Path(score.bag).name}: {score.instruction}', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return titles


def plot_error_histograms(scores: Sequence[EpisodeScore], names: Sequence[str],
                          std: np.ndarray, path: Path) -> List[str]:
    """Histogram of the normalized first-action error per dimension over all bags."""
    plt = _plt()
    err = np.concatenate([(s.predicted[:, 0] - s.recorded[:, 0])[s.valid[:, 0]]
                          for s in scores]) / std
    rows, cols = _grid(len(names))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False)
    titles = []
    for a, name in enumerate(names):
        ax = axes[a // cols][a % cols]
        ax.hist(err[:, a], bins=40, color='tab:blue')
        ax.set_title(f'{name} error / std', fontsize=9)
        ax.tick_params(labelsize=7)
        titles.append(name)
    for extra in range(len(names), rows * cols):
        axes[extra // cols][extra % cols].axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return titles


def plot_horizon(horizon: Sequence[dict], path: Path) -> List[str]:
    """Normalized MAE and RMSE against chunk index k (one panel)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    k = [h['k'] for h in horizon]
    ax.plot(k, [h['mae_normalized'] for h in horizon], marker='o', label='MAE / std')
    ax.plot(k, [h['rmse_normalized'] for h in horizon], marker='s', label='RMSE / std')
    ax.set_xlabel('chunk index k (steps ahead)')
    ax.set_title('error against chunk horizon', fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return ['error against chunk horizon']


def _metric_rows(scope: str, metrics: dict) -> List[list]:
    rows = []
    for section in SECTIONS:
        for name, m in metrics[section].items():
            rows.append([scope, section, name, m['n'], m['mae'], m['rmse'],
                         m['mae_normalized'], m['rmse_normalized']])
    return rows


def write_csvs(out: Path, doc: dict, scores: Sequence[EpisodeScore],
               names: Sequence[str]) -> None:
    """metrics.csv, steps.csv and horizon.csv (see the module docstring)."""
    with open(out / 'metrics.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['scope', 'section', 'dimension', 'n', 'mae', 'rmse', 'mae_normalized',
                    'rmse_normalized'])
        w.writerows(_metric_rows('overall', doc['overall']))
        for ep in doc['episodes']:
            w.writerows(_metric_rows(ep['bag'], ep['metrics']))
    with open(out / 'steps.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['bag', 'step', 'stamp_s', 'dimension', 'recorded', 'predicted',
                    'abs_error'])
        for s in scores:
            for t in range(len(s.stamps)):
                for a, name in enumerate(names):
                    r, p = float(s.recorded[t, 0, a]), float(s.predicted[t, 0, a])
                    w.writerow([s.bag, t, f'{s.stamps[t]:.6f}', name, f'{r:.6g}', f'{p:.6g}',
                                f'{abs(p - r):.6g}'])
    with open(out / 'horizon.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['k', 'n', 'mae_normalized', 'rmse_normalized'])
        for h in doc['overall']['horizon']:
            w.writerow([h['k'], h['n'], h['mae_normalized'], h['rmse_normalized']])


def write_plots(out: Path, doc: dict, scores: Sequence[EpisodeScore], names: Sequence[str],
                std: np.ndarray, max_episodes: int) -> Dict[str, List[str]]:
    """Every PNG; returns file name (relative to `out`) -> panel titles."""
    plots = out / 'plots'
    plots.mkdir(exist_ok=True)
    index = {}
    for i, s in enumerate(scores[:max_episodes]):
        rel = f'plots/trajectories_{i:02d}.png'
        index[rel] = plot_trajectories(s, names, out / rel)
    if scores:
        hist, horizon = 'plots/error_histograms.png', 'plots/horizon.png'
        index[hist] = plot_error_histograms(scores, names, std, out / hist)
        index[horizon] = plot_horizon(doc['overall']['horizon'], out / horizon)
    return index


def _fmt(x) -> str:
    return '–' if x is None else f'{x:.4g}'


def markdown_report(doc: dict) -> str:
    """The report page (Markdown), linking the plots."""
    names = doc['action_names']
    lines = [f'# eval-bag: {doc["checkpoint"]}', '',
             f'Backend {doc["backend"]}; {len(doc["episodes"])} bags scored, '
             f'{len(doc["skipped"])} skipped; {doc["overall"]["steps"]} control steps; '
             f'chunk K = {doc["chunk"]}.'
             + (' **Interrupted**: only the bags listed were scored.' if doc.get('interrupted')
                else ''), '']
    o = doc['overall']
    lines += ['## Overall', '', '| dimension | next-action MAE | RMSE | MAE / std | RMSE / std '
              '| chunk MAE / std |', '|---|---|---|---|---|---|']
    for n in names:
        m, c = o['next_action'][n], o['chunk'][n]
        lines.append(f'| {n} | {_fmt(m["mae"])} | {_fmt(m["rmse"])} | '
                     f'{_fmt(m["mae_normalized"])} | {_fmt(m["rmse_normalized"])} | '
                     f'{_fmt(c["mae_normalized"])} |')
    lines += ['', f'Gripper agreement (first action, threshold {_fmt(doc["gripper_threshold"])}): '
              f'{_fmt(o["gripper_agreement"])}', '',
              '| k | ' + ' | '.join(str(h['k']) for h in o['horizon']) + ' |',
              '|---|' + '---|' * len(o['horizon']),
              '| MAE / std | ' + ' | '.join(_fmt(h['mae_normalized']) for h in o['horizon'])
              + ' |', '']
    if doc.get('input_reliance'):
        lines += ['## Input reliance', '',
                  'Next-action MAE / std with one input replaced by the episode\'s first step. '
                  'A policy that finds its goal in the camera gets much worse when the images '
                  'are frozen; one that reads it off its own hand position (the copycat '
                  'shortcut, docs/training.md) gets worse when the proprioception is.', '',
                  '| inputs | MAE / std |', '|---|---|']
        lines += [f'| {k} | {_fmt(v)} |' for k, v in doc['input_reliance'].items()] + ['']
    lines += ['## Per bag', '', '| bag | task | steps | MAE / std (next) | gripper agreement '
              '| note |', '|---|---|---|---|---|---|']
    for ep in doc['episodes']:
        s = ep['metrics']['summary']
        lines.append(f'| {Path(ep["bag"]).name} | {ep["task"]} | {ep["metrics"]["steps"]} | '
                     f'{_fmt(s["next_action_mae_normalized"])} | '
                     f'{_fmt(ep["metrics"]["gripper_agreement"])} | {ep["note"] or ""} |')
    if doc['skipped']:
        lines += ['', '## Skipped', '']
        lines += [f'- `{s["bag"]}`: {s["reason"]}' for s in doc['skipped']]
    lines += ['', '## Plots', '']
    lines += [f'![{Path(p).stem}]({p})' for p in doc['plots']]
    return '\n'.join(lines) + '\n'


def write_report(out, doc: dict, scores: Sequence[EpisodeScore], std: np.ndarray,
                 max_plot_episodes: int = 4) -> Path:
    """Write every output file into `out` (created); returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = doc['action_names']
    doc['plots'] = write_plots(out, doc, scores, names, std, max_plot_episodes)
    write_csvs(out, doc, scores, names)
    (out / 'eval_bag.json').write_text(json.dumps(doc, indent=1, allow_nan=False))
    (out / 'report.md').write_text(markdown_report(doc))
    return out
