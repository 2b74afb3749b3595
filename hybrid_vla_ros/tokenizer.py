"""Instruction tokenization with the `tokenizers` library from a ``tokenizer.json``.

Needs neither torch nor transformers, so the onnxruntime inference path can use it; gives
the same ids as the transformers tokenizer called with ``padding='max_length',
truncation=True, max_length=max_tokens``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import numpy as np


class InstructionTokenizer:
    """Turns instructions into fixed-length (B, L) int64 token ids and (B, L) int64 masks
    (1 = real token, 0 = padding), L = `max_tokens`."""

    def __init__(self, tokenizer_json: Path | str, max_tokens: int):
        from tokenizers import Tokenizer
        path = Path(tokenizer_json)
        if not path.is_file():
            raise FileNotFoundError(f'tokenizer file {path} does not exist')
        self.path = path
        self.max_tokens = int(max_tokens)
        self._tok = Tokenizer.from_file(str(path))
        pad_token = '[PAD]'
        pad_id = self._tok.token_to_id(pad_token)
        if pad_id is None:
            pad_id, pad_token = 0, self._tok.id_to_token(0)
        self._tok.enable_truncation(max_length=self.max_tokens)
        self._tok.enable_padding(length=self.max_tokens, pad_id=pad_id, pad_token=pad_token)
        self.vocab_size = self._tok.get_vocab_size()

    def __call__(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Tokenize a list of instructions -> (ids, mask), each (B, L) int64."""
        if isinstance(texts, str):
            texts = [texts]
        encodings = self._tok.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(
            len(texts), -1)
        return ids, mask
