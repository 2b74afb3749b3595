"""Is an instruction usable? Checked before it is encoded (no rclpy).

Rules, in order (a refused instruction makes the robot hold until the next one):

- control characters are dropped and whitespace collapsed;
- empty -> refused (WARN): an empty instruction means "stop";
- longer than `max_chars` characters -> refused (ERROR);
- more than `max_unknown_fraction` of its word pieces unknown to the checkpoint's tokenizer
  (an emoji string, a script the vocabulary lacks) -> refused (ERROR);
- more tokens than the checkpoint reads (``instruction_max_tokens``) -> used, truncated
  as in training (WARN);
- non-ASCII but understood (``öffne die Schublade``) -> used (WARN says so).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from pathlib import Path

from .diagnostics import ERROR, OK, WARN


@dataclasses.dataclass
class Verdict:
    """The outcome for one instruction.

    Attributes:
        text: the cleaned text (what is encoded when `ok`).
        ok: True to encode and use it; False to hold.
        level: diagnostics level (OK, WARN, ERROR).
        message: one line for the log and the diagnostic.
        tokens: word pieces including the special tokens, before truncation.

    """

    text: str
    ok: bool
    level: int
    message: str
    tokens: int = 0


def clean(raw: str) -> str:
    """Drop control / format characters, collapse whitespace, strip."""
    kept = ''.join(ch if not unicodedata.category(ch).startswith('C') else ' ' for ch in raw)
    return ' '.join(kept.split())


def preview(text: str, limit: int = 60) -> str:
    """The text quoted for a log line, shortened to `limit` characters."""
    short = text if len(text) <= limit else text[:limit - 3] + '...'
    return repr(short)


class InstructionChecker:
    """Applies the rules above with the checkpoint's ``tokenizer.json``.

    Args:
        tokenizer_json: the exported tokenizer (``CHECKPOINT/onnx/tokenizer.json``).
        max_tokens: L, tokens the checkpoint reads.
        max_chars: longest accepted instruction in characters.
        max_unknown_fraction: largest accepted share of unknown word pieces (0..1).

    """

    def __init__(self, tokenizer_json, max_tokens: int, max_chars: int = 500,
                 max_unknown_fraction: float = 0.5):
        from tokenizers import Tokenizer
        self._tok = Tokenizer.from_file(str(Path(tokenizer_json)))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.unk = getattr(self._tok.model, 'unk_token', '[UNK]')
        self.max_tokens = int(max_tokens)
        self.max_chars = int(max_chars)
        self.max_unknown_fraction = float(max_unknown_fraction)

    def check(self, raw: str) -> Verdict:
        """Judge one instruction (see the module docstring)."""
        text = clean(raw)
        if not text:
            return Verdict(text, False, WARN, 'empty instruction: holding until a new one '
                                              'arrives')
        if len(text) > self.max_chars:
            return Verdict(text, False, ERROR,
                           f'instruction of {len(text)} characters refused (max_chars '
                           f'{self.max_chars}): holding; starts {preview(text, 40)}')
        enc = self._tok.encode(text)
        pieces = [t for t, special in zip(enc.tokens, enc.special_tokens_mask, strict=True)
                  if not special]
        unknown = sum(t == self.unk for t in pieces)
        if not pieces or unknown / len(pieces) > self.max_unknown_fraction:
            return Verdict(text, False, ERROR,
                           f'instruction {preview(text)} refused: {unknown} of {len(pieces)} '
                           f'word pieces are unknown to the checkpoint\'s tokenizer; holding',
                           len(enc.tokens))
        notes = []
        level = OK
        if len(enc.tokens) > self.max_tokens:
            level = WARN
            notes.append(f'{len(enc.tokens)} tokens, the checkpoint reads the first '
                         f'{self.max_tokens} (truncated)')
        if not text.isascii():
            level = WARN
            notes.append(f'non-ASCII text ({unknown} unknown word pieces)')
        message = f'instruction {preview(text)}' + (': ' + '; '.join(notes) if notes else '')
        return Verdict(text, True, level, message, len(enc.tokens))
