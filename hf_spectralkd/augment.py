"""Augmented transfer sets for text distillation: new, unlabelled texts made from the labelled ones.

The teacher labels them (soft targets), so the student learns from many more inputs than there are labels.
Operators follow Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks" (arXiv 1903.12136), without the part-of-speech synonym swap (it needs a tagger):

- **masking**: each word is replaced by the tokenizer's mask token with probability ``mask_prob``;
- **n-gram sampling**: with probability ``ngram_prob`` the example is cut down to one random n-gram,
  ``n`` uniform in ``1..max_ngram``;

plus the two word-level operators of EDA (Wei & Zou 2019, arXiv 1901.11196) that need no dictionary:

- **word drop**: each word is removed with probability ``drop_prob`` (at least one word stays);
- **word swap**: ``round(swap_prob * words)`` random pairs of words swap places.

Every text gets its own generator seeded from ``(seed, index, copy)``, so a transfer set is reproducible and
does not change when the data is read in another order or when ``n_per_example`` grows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["AugmentConfig", "augment_text", "augment_texts"]


@dataclass(frozen=True)
class AugmentConfig:
    """How an augmented transfer set is built (the recipe's ``data.augment`` section).

    Defaults are Tang et al.'s masking / n-gram probabilities; drop and swap are off unless asked for.
    """

    n_per_example: int = 4
    mask_prob: float = 0.1
    ngram_prob: float = 0.25
    max_ngram: int = 5
    drop_prob: float = 0.0
    swap_prob: float = 0.0
    seed: int = 42

    def __post_init__(self):
        if not isinstance(self.n_per_example, int) or isinstance(self.n_per_example, bool) or self.n_per_example < 1:
            raise ValueError(f"augment.n_per_example must be an integer >= 1 (got {self.n_per_example!r})")
        if not isinstance(self.max_ngram, int) or isinstance(self.max_ngram, bool) or self.max_ngram < 1:
            raise ValueError(f"augment.max_ngram must be an integer >= 1 (got {self.max_ngram!r})")
        for name in ("mask_prob", "ngram_prob", "drop_prob", "swap_prob"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not math.isfinite(value) or not 0 <= value <= 1:
                raise ValueError(f"augment.{name} must be a probability in [0, 1] (got {value!r})")
        if not any((self.mask_prob, self.ngram_prob, self.drop_prob, self.swap_prob)):
            raise ValueError("augment: every operator probability is 0, so each copy would equal its source text; "
                             "set at least one of mask_prob, ngram_prob, drop_prob, swap_prob above 0")

    def to_dict(self) -> dict:
        return asdict(self)


def augment_text(text: str, config: AugmentConfig, mask_token: str, rng: random.Random) -> str:
    """One augmented copy of ``text`` (words split on whitespace)."""
    words = text.split()
    if not words:
        return text
    words = [mask_token if rng.random() < config.mask_prob else w for w in words]
    if config.drop_prob:
        kept = [w for w in words if rng.random() >= config.drop_prob]
        words = kept or [rng.choice(words)]
    for _ in range(round(config.swap_prob * len(words))):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    if rng.random() < config.ngram_prob:
        n = min(rng.randint(1, config.max_ngram), len(words))
        start = rng.randrange(len(words) - n + 1)
        words = words[start:start + n]
    return " ".join(words)


def augment_texts(texts: Iterable[str], config: AugmentConfig, mask_token: str | None = "[MASK]",
                  exclude: set | None = None) -> list:
    """``config.n_per_example`` augmented copies of every text, in order (copies of text 0 first).

    A copy identical to its source, to another copy of it, or to a text of ``exclude`` (e.g. the labelled
    set) is dropped: it would add nothing the labelled row does not already give. ``mask_token`` is the
    student tokenizer's mask token (``[MASK]`` for BERT, ``<mask>`` for RoBERTa/MPNet); with ``None`` masking
    removes the word instead.
    """
    exclude = set(exclude or ())
    out = []
    for index, text in enumerate(texts):
        seen = {text}
        for copy in range(config.n_per_example):
            rng = random.Random(f"{config.seed}:{index}:{copy}")
            new = augment_text(text, config, mask_token if mask_token is not None else "", rng)
            new = " ".join(new.split())  # a removed (empty) mask leaves no double spaces
            if new and new not in seen and new not in exclude:
                seen.add(new)
                out.append(new)
    return out
