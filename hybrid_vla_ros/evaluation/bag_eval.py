"""Offline scoring of a policy against recorded bags (no ROS graph).

For every control step of every bag the policy predicts an action chunk from the recorded
observation and instruction, exactly as the policy node would (batch 1, the same backend),
and the chunk is compared with the commands that were recorded at that step and the K-1
steps after it. Bags are read through a topic map, so bags from other recorders work when
the map names their topics; a damaged MCAP bag is salvaged (`data.salvage`) and its
readable part scored.

Shapes: T control steps, K chunk length, A action dimensions. Predictions and recordings are
(T, K, A) float32 in the robot's units (message units); ``valid`` (T, K) bool marks chunk
entries that have a recorded command (the last K-1 steps of an episode have fewer).
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from ..data.discovery import find_bags
from ..data.episode import Episode, load_episode
from ..data.errors import BagContentError
from ..data.salvage import SalvageReport, salvage_mcap, storage_file
from ..data.topic_map import TopicMap, load_topic_map, parse_topic_map
from ..inference.backend import Backend
from ..schema import ConfigError, load_yaml


@dataclasses.dataclass
class EpisodeScore:
    """One bag's predictions beside its recorded commands.

    ``predicted`` / ``recorded``: (T, K, A) float32, robot units; ``valid``: (T, K) bool;
    ``stamps``: (T,) float64 seconds of each control step; ``action_names``: (A,) from the
    topic map; ``instructions``: the distinct instruction texts of the bag (``instruction``
    is the first step's); ``note``: what was lost when the bag was damaged (None for an
    intact bag).
    """

    bag: str
    task: str
    instruction: str
    predicted: np.ndarray
    recorded: np.ndarray
    valid: np.ndarray
    stamps: np.ndarray
    action_names: List[str]
    instructions: List[str]
    note: Optional[str] = None
    # Input-reliance check: condition name -> (T, K, A) predictions with one input frozen.
    frozen: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def resolve_topic_map(checkpoint, explicit: Optional[str],
                      instruction: Optional[str]) -> TopicMap:
    """The topic map to read bags with: `explicit` (a YAML path), else the one embedded in
    the checkpoint by `hybrid-vla train`; `instruction` replaces the instruction source with
    a fixed text (bags without an instruction topic)."""
    if explicit:
        tm = load_topic_map(explicit)
    else:
        doc = load_yaml(Path(checkpoint) / 'config.yaml')
        embedded = (doc.get('training') or {}).get('topic_map')
        if not isinstance(embedded, dict):
            raise ConfigError(f'checkpoint {checkpoint} does not record the topic map it was '
                              'trained with; pass --topic-map (e.g. config/data/metaworld.yaml '
                              'for the built-in suite)')
        tm = parse_topic_map(embedded, 'checkpoint training.topic_map')
    if instruction is not None:
        data = tm.to_mapping()
        data['instruction'] = {'text': instruction}
        tm = parse_topic_map(data, 'topic_map')
    return tm


def check_topic_map_fits(tm: TopicMap, backend: Backend) -> None:
    """Refuse a topic map whose cameras, image size or chunk differ from the policy's."""
    spec = backend.spec
    cams = [c['name'] for c in spec.cameras]
    if tm.camera_names != cams:
        raise ConfigError(f'topic map cameras {tm.camera_names} differ from the policy\'s '
                          f'{cams}; list the same camera names in the topic map')
    h, w = spec.cameras[0]['height'], spec.cameras[0]['width']
    if list(tm.image_size) != [h, w]:
        raise ConfigError(f'topic map image_size {list(tm.image_size)} differs from the '
                          f'policy\'s {[h, w]}; set image_size: [{h}, {w}]')
    if tm.chunk != spec.chunk:
        raise ConfigError(f'topic map chunk {tm.chunk} differs from the policy\'s {spec.chunk}')


def _check_episode_fits(ep: Episode, backend: Backend) -> None:
    spec = backend.spec
    if ep.actions.shape[1] != spec.action_dim or ep.proprio.shape[1] != spec.proprio_dim:
        raise ConfigError(
            f'the topic map gives {ep.actions.shape[1]} action values '
            f'({", ".join(ep.action_names)}) and {ep.proprio.shape[1]} proprioception values, '
            f'the policy takes {spec.action_dim} ({", ".join(spec.action_names)}) and '
            f'{spec.proprio_dim}; fix the topic map\'s action/proprio entries')


# Input-reliance conditions: which input is replaced by the episode's first step.
FROZEN_INPUTS = {'proprio from step 0': 'proprio', 'images from step 0': 'images'}


def predict_episode(backend: Backend, ep: Episode, batch: int = 1,
                    freeze: Optional[str] = None) -> np.ndarray:
    """Action chunks for every step of `ep`: (T, K, A) float32, robot units.

    Batch 1 (the default) runs exactly what the policy node runs each tick; larger batches
    are faster and agree to float rounding. `freeze` ('proprio' or 'images') feeds every
    step that input of step 0 instead (the input-reliance check).
    """
    language = {}
    out = []
    for start in range(0, len(ep), batch):
        steps = range(start, min(start + batch, len(ep)))
        texts = [ep.instruction_at(t) for t in steps]
        for text in texts:
            if text not in language:
                language[text] = backend.encode_instruction(text)
        images = np.stack([ep.images_at(0 if freeze == 'images' else t) for t in steps])
        lang = np.concatenate([language[t][0] for t in texts])
        mask = np.concatenate([language[t][1] for t in texts])
        rows = [0] * len(steps) if freeze == 'proprio' else list(steps)
        proprio = np.ascontiguousarray(ep.proprio[rows], dtype=np.float32)
        visual = backend.encode_vision(images)
        out.append(backend.core(visual, lang, mask, proprio))
    return np.concatenate(out).astype(np.float32)


def recorded_chunks(ep: Episode, chunk: int):
    """The recorded commands as chunks: ((T, K, A) float32, (T, K) bool valid)."""
    t = len(ep)
    idx = np.arange(t)[:, None] + np.arange(chunk)[None, :]
    valid = idx < t
    actions = ep.actions[np.minimum(idx, t - 1)].astype(np.float32)
    return actions, valid


def _load(bag: Path, tm: TopicMap, workdir: Path, warned: set):
    """(episode, note) for one bag, salvaging a damaged MCAP bag; raises BagContentError /
    ConfigError when nothing usable can be read."""
    try:
        return load_episode(bag, tm, warned=warned), None
    except BagContentError as exc:
        if storage_file(bag) is None:
            raise
        first_error = str(exc)
    copy = workdir / f'salvaged_{bag.name}'
    try:
        report: SalvageReport = salvage_mcap(bag, copy)
    except ValueError as exc:
        raise BagContentError(f'{first_error}; salvage found nothing readable: {exc}') from None
    try:
        ep = load_episode(copy, tm, warned=warned)
    except BagContentError as exc:
        raise BagContentError(f'{first_error}; the salvaged part holds no complete control '
                              f'step: {exc}') from None
    ep.path = str(bag)
    return ep, report.describe()


def evaluate_bags(backend: Backend, sources: Sequence, tm: TopicMap, batch: int = 1,
                  progress: Optional[Callable[[str], None]] = print,
                  input_reliance: bool = False):
    """Score every bag found in `sources` (bag directories or parents of them).

    Returns (scores: List[EpisodeScore], skipped: List[dict(bag, reason)], interrupted:
    bool). A bag that cannot be read, or that the topic map does not fit (a missing topic:
    the reason names it and lists the bag's topics), is skipped with its reason and the
    others are still scored. Ctrl-C stops after the current bag and returns what was
    scored, so the report of a long run is never lost. With `input_reliance` every bag is
    also predicted with each input of `FROZEN_INPUTS` frozen at step 0.
    """
    check_topic_map_fits(tm, backend)
    bags, unfinished = find_bags(sources)
    bags = sorted(set(bags) | set(unfinished))
    if not bags:
        raise ConfigError(f'no rosbag2 directories (with metadata.yaml or an .mcap/.db3 file) '
                          f'in {", ".join(str(s) for s in sources)}')
    scores: List[EpisodeScore] = []
    skipped: List[dict] = []
    warned: set = set()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix='eval_bag_') as tmp:
        for i, bag in enumerate(bags, 1):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    ep, note = _load(bag, tm, Path(tmp), warned)
                _check_episode_fits(ep, backend)
                predicted = predict_episode(backend, ep, batch)
                frozen = ({name: predict_episode(backend, ep, batch, what)
                           for name, what in FROZEN_INPUTS.items()} if input_reliance else {})
            except (BagContentError, ConfigError) as exc:
                skipped.append({'bag': str(bag), 'reason': str(exc)})
                if progress:
                    progress(f'[{i}/{len(bags)}] {bag.name}: skipped: {exc}')
                continue
            except KeyboardInterrupt:
                interrupted = True
                if progress:
                    progress(f'interrupted: reporting the {len(scores)} bags scored so far')
                break
            recorded, valid = recorded_chunks(ep, backend.spec.chunk)
            task = ep.metadata.get('hybrid_vla.task', '')
            scores.append(EpisodeScore(str(bag), task, ep.instruction_at(0), predicted,
                                       recorded, valid, ep.stamps.copy(),
                                       list(ep.action_names), list(ep.instructions), note,
                                       frozen))
            if progress:
                progress(f'[{i}/{len(bags)}] {bag.name}: {len(ep)} steps'
                         + (f' ({note})' if note else ''))
    return scores, skipped, interrupted


# ---------------------------------------------------------------------------------------
# Metrics

def _dim_metrics(err: np.ndarray, std: np.ndarray, names: Sequence[str]) -> Dict[str, dict]:
    """Per dimension MAE / RMSE of `err` (N, A), in units and divided by the action std."""
    out = {}
    for a, name in enumerate(names):
        e = err[:, a].astype(np.float64)
        if not len(e):
            out[name] = {'mae': None, 'rmse': None, 'mae_normalized': None,
                         'rmse_normalized': None, 'n': 0}
            continue
        mae, rmse = float(np.abs(e).mean()), float(np.sqrt((e ** 2).mean()))
        out[name] = {'mae': mae, 'rmse': rmse, 'mae_normalized': mae / float(std[a]),
                     'rmse_normalized': rmse / float(std[a]), 'n': int(len(e))}
    return out


def score_metrics(predicted: np.ndarray, recorded: np.ndarray, valid: np.ndarray,
                  std: np.ndarray, names: Sequence[str], gripper: Optional[int],
                  gripper_threshold: float) -> dict:
    """Metrics of (T, K, A) predictions against recordings.

    - ``next_action``: per dimension, the first action of each chunk (what runs this tick)
    - ``chunk``: per dimension, every valid chunk entry
    - ``horizon``: per chunk index k, mean over dimensions of the normalized MAE / RMSE
    - ``gripper_agreement``: share of steps whose first predicted gripper command falls on
      the same side of `gripper_threshold` as the recorded one (None without a gripper)
    """
    err = predicted - recorded
    first = valid[:, 0]
    out = {'steps': int(len(predicted)),
           'next_action': _dim_metrics(err[first, 0], std, names),
           'chunk': _dim_metrics(err[valid], std, names)}
    horizon = []
    for k in range(predicted.shape[1]):
        e = err[valid[:, k], k] / std
        horizon.append({'k': k, 'n': int(len(e)),
                        'mae_normalized': float(np.abs(e).mean()) if len(e) else None,
                        'rmse_normalized': float(np.sqrt((e ** 2).mean())) if len(e) else None})
    out['horizon'] = horizon
    if gripper is not None and first.any():
        p = predicted[first, 0, gripper] > gripper_threshold
        r = recorded[first, 0, gripper] > gripper_threshold
        out['gripper_agreement'] = float((p == r).mean())
    else:
        out['gripper_agreement'] = None
    def mean(section: str, key: str) -> Optional[float]:
        values = [v[key] for v in out[section].values() if v[key] is not None]
        return float(np.mean(values)) if values else None

    out['summary'] = {'next_action_mae_normalized': mean('next_action', 'mae_normalized'),
                      'next_action_rmse_normalized': mean('next_action', 'rmse_normalized'),
                      'chunk_mae_normalized': mean('chunk', 'mae_normalized')}
    return out


def gripper_index(names: Sequence[str], explicit: Optional[int]) -> Optional[int]:
    """Index of the gripper action dimension: `explicit` (-1 = none), else the first action
    name containing ``grip``, else None."""
    if explicit is not None:
        if explicit < 0:
            return None
        if explicit >= len(names):
            raise ConfigError(f'--gripper-dim {explicit}: the policy has {len(names)} action '
                              f'dimensions ({", ".join(names)})')
        return explicit
    for i, name in enumerate(names):
        if 'grip' in name.lower():
            return i
    return None


def action_stats(checkpoint):
    """((A,) mean, (A,) std) float64 of the actions the checkpoint was trained on, from its
    normalization statistics: std scales the normalized errors, and a gripper's mean lies
    between its open and closed levels, which makes it the default gripper threshold."""
    doc = load_yaml(Path(checkpoint) / 'config.yaml')
    try:
        stats = doc['model']['normalization']['action']
        mean = np.asarray(stats['mean'], dtype=np.float64)
        std = np.asarray(stats['std'], dtype=np.float64)
    except (KeyError, TypeError):
        raise ConfigError(f'checkpoint {checkpoint}: config.yaml has no '
                          'model.normalization.action statistics (checkpoints written by '
                          'hybrid-vla train have them)') from None
    return mean, np.maximum(std, 1e-6)


def evaluate(checkpoint, sources: Sequence, out, backend: str = 'onnxruntime',
             topic_map: Optional[str] = None, instruction: Optional[str] = None,
             threads: int = 1, batch: int = 1, gripper_dim: Optional[int] = None,
             gripper_threshold: Optional[float] = None, max_plot_episodes: int = 4,
             progress: Optional[Callable[[str], None]] = print, input_reliance: bool = False):
    """Score `checkpoint` on the bags in `sources` and write the report into `out`.

    Returns (the JSON document, also written as ``out/eval_bag.json``; the
    [EpisodeScore] it was computed from). Raises `ConfigError` when no bag could be scored.
    With `input_reliance` the document's ``input_reliance`` maps each condition (recorded
    inputs, proprioception or images frozen at step 0) to the next-action MAE / std.
    """
    from ..inference.backend import load_backend
    from .bag_report import write_report
    be = load_backend(checkpoint, backend, threads=threads)
    tm = resolve_topic_map(checkpoint, topic_map, instruction)
    scores, skipped, interrupted = evaluate_bags(be, sources, tm, batch, progress,
                                                 input_reliance)
    if not scores:
        reasons = '; '.join(f'{Path(s["bag"]).name}: {s["reason"]}' for s in skipped[:3])
        raise ConfigError(f'no bag could be scored ({len(skipped)} skipped: {reasons})')
    # Names from the policy, else from the topic map (checkpoints made outside `train`).
    names = list(be.spec.action_names) or scores[0].action_names
    mean, std = action_stats(checkpoint)
    grip = gripper_index(names, gripper_dim)
    if gripper_threshold is None and grip is not None:
        gripper_threshold = float(mean[grip])

    def metrics(ss: Sequence[EpisodeScore], frozen: Optional[str] = None) -> dict:
        return score_metrics(np.concatenate([s.frozen[frozen] if frozen else s.predicted
                                             for s in ss]),
                             np.concatenate([s.recorded for s in ss]),
                             np.concatenate([s.valid for s in ss]), std, names, grip,
                             gripper_threshold)

    doc = {'checkpoint': str(checkpoint), 'model_id': be.spec.model_id,
           'backend': be.describe(), 'batch': batch, 'chunk': be.spec.chunk,
           'action_names': names, 'action_std': [float(x) for x in std],
           'gripper_dim': grip, 'gripper_threshold': gripper_threshold,
           'instruction_override': instruction, 'topic_map': tm.to_mapping(),
           'overall': metrics(scores),
           'episodes': [{'bag': s.bag, 'task': s.task, 'instruction': s.instruction,
                         'note': s.note, 'metrics': metrics([s])} for s in scores],
           'skipped': skipped, 'interrupted': interrupted}
    if input_reliance:
        doc['input_reliance'] = {'recorded inputs':
                                 doc['overall']['summary']['next_action_mae_normalized']}
        for name in FROZEN_INPUTS:
            doc['input_reliance'][name] = (
                metrics(scores, name)['summary']['next_action_mae_normalized'])
    write_report(out, doc, scores, std, max_plot_episodes)
    return doc, scores
