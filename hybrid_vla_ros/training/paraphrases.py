"""Instruction paraphrases: training-time augmentation of the words a policy reads.

A dataset records one phrasing per episode, so a policy trained on a few phrasings per
task learns those strings rather than what they mean, and an instruction worded another
way on the robot is followed less well (docs/mt50.md measures the gap). A paraphrase file
lists *groups* of instructions that ask for the same thing; in training, a sample whose
instruction belongs to a group has it replaced, with probability
``data.paraphrase_probability``, by a member of its group drawn uniformly (the recorded
phrasing included). Validation samples keep their recorded instruction.

The file (``data.paraphrases``)::

    # name -> phrasings that mean the same; every phrasing in at most one group
    groups:
      door-lock:
        - lock the door
        - turn the door's lock lever down
      door-unlock:
        - unlock the door
        - ...

A phrasing that sits in two groups is refused (it could not say which task it means), and
so is a file none of whose phrasings occurs in the training data (a typo or the wrong
file: it would silently do nothing). Matching is on the exact text after trimming
surrounding whitespace.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence, Tuple

import torch

from ..schema import ConfigError, load_yaml


@dataclasses.dataclass(frozen=True)
class Paraphrases:
    """Groups of interchangeable instructions.

    Attributes:
        groups: group name -> its phrasings (at least two, all distinct).
        source: the file they were read from (for messages).

    """

    groups: Dict[str, Tuple[str, ...]]
    source: str = '<memory>'

    def __post_init__(self):
        owner: Dict[str, str] = {}
        for name, texts in self.groups.items():
            for text in texts:
                if text in owner and owner[text] != name:
                    raise ConfigError(f'{self.source}: groups.{name}: {text!r} is also in group '
                                      f'{owner[text]!r}; a phrasing may belong to one group '
                                      'only (it must say which task it means)')
                owner[text] = name
        object.__setattr__(self, '_owner', owner)

    @classmethod
    def load(cls, path) -> Paraphrases:
        """Read and validate a paraphrase file; `ConfigError` names the file and the key."""
        data = load_yaml(path)
        groups = data.get('groups')
        unknown = sorted(set(data) - {'groups'})
        if unknown:
            raise ConfigError(f'{path}: unknown key(s) {", ".join(unknown)}; a paraphrase file '
                              'has one key, groups (name -> list of phrasings)')
        if not isinstance(groups, dict) or not groups:
            raise ConfigError(f'{path}: groups: expected a mapping of group name -> list of '
                              f'phrasings, got {groups!r}')
        parsed: Dict[str, Tuple[str, ...]] = {}
        for name, texts in groups.items():
            key = f'groups.{name}'
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ConfigError(f'{path}: {key}: expected a list of strings, got {texts!r}')
            cleaned = [t.strip() for t in texts]
            for i, text in enumerate(cleaned):
                if not text:
                    raise ConfigError(f'{path}: {key}[{i}]: an empty phrasing')
            repeated = sorted({t for t in cleaned if cleaned.count(t) > 1})
            if repeated:
                raise ConfigError(f'{path}: {key}: {repeated[0]!r} is listed twice')
            if len(cleaned) < 2:
                raise ConfigError(f'{path}: {key}: a group needs at least two phrasings to '
                                  'choose between')
            parsed[str(name)] = tuple(cleaned)
        return cls(parsed, str(path))

    def group_of(self, text: str):
        """The name of the group `text` belongs to, or None."""
        return self._owner.get(text.strip())

    def coverage(self, instructions: Sequence[str]) -> Tuple[int, int]:
        """(how many of the distinct `instructions` have paraphrases, how many there are)."""
        distinct = set(instructions)
        return sum(self.group_of(t) is not None for t in distinct), len(distinct)

    def require_coverage(self, instructions: Sequence[str]) -> str:
        """A one-line summary of how much of the data the file covers; `ConfigError` when it
        covers none of `instructions` (the training data's distinct instructions)."""
        covered, total = self.coverage(instructions)
        if total and covered == 0:
            example = sorted(set(instructions))[0]
            raise ConfigError(f'{self.source}: none of the {total} instructions in the training '
                              f'data is in a paraphrase group (e.g. {example!r}); check that '
                              'data.paraphrases names the file written for this data')
        texts = sum(len(g) for g in self.groups.values())
        return (f'paraphrases: {covered} of {total} instructions have paraphrases '
                f'({texts} phrasings in {len(self.groups)} groups, {self.source})')

    def sample(self, texts: Sequence[str], probability: float,
               generator: torch.Generator) -> List[str]:
        """`texts` with each one found in a group replaced, with `probability`, by a member
        of its group drawn uniformly (possibly itself); the others unchanged. Draws come from
        `generator` (two draws per text, whether or not it is replaced, so a resumed run
        stays in step)."""
        n = len(texts)
        if n == 0:
            return []
        coins = torch.rand(n, generator=generator).tolist()
        picks = torch.rand(n, generator=generator).tolist()
        out = []
        for text, coin, pick in zip(texts, coins, picks, strict=True):
            group = self.group_of(text)
            if group is None or coin >= probability:
                out.append(text)
                continue
            members = self.groups[group]
            out.append(members[min(int(pick * len(members)), len(members) - 1)])
        return out
