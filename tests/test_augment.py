"""Augmented transfer sets (hf_spectralkd.augment): operators, reproducibility, validation."""

import random

import pytest

from hf_spectralkd.augment import AugmentConfig, augment_text, augment_texts

TEXTS = ["how do i transfer money to my savings account", "what is the weather like in paris today", "play some jazz"]


def test_masking_every_word_with_probability_one():
    config = AugmentConfig(n_per_example=1, mask_prob=1.0, ngram_prob=0.0)
    assert augment_text("book a table for two", config, "[MASK]", random.Random(0)) == " ".join(["[MASK]"] * 5)


def test_ngram_sampling_keeps_a_contiguous_span():
    config = AugmentConfig(n_per_example=8, mask_prob=0.0, ngram_prob=1.0, max_ngram=3)
    words = TEXTS[0].split()
    spans = {" ".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
    out = augment_texts([TEXTS[0]], config)
    assert out and all(text in spans for text in out)
    assert len(out) == len(set(out))  # duplicates dropped


def test_drop_and_swap_keep_a_multiset_subset_of_the_words():
    config = AugmentConfig(n_per_example=6, mask_prob=0.0, ngram_prob=0.0, drop_prob=0.3, swap_prob=0.2)
    for text in augment_texts(TEXTS[:2], config):
        words = text.split()
        source = TEXTS[0].split() if set(words) <= set(TEXTS[0].split()) else TEXTS[1].split()
        assert words and all(words.count(w) <= source.count(w) for w in words)


def test_reproducible_and_independent_of_other_rows():
    config = AugmentConfig(n_per_example=4, seed=7)
    first = augment_texts(TEXTS, config)
    assert first == augment_texts(TEXTS, config)
    # the copies of a text depend on (seed, index, copy) only: another text before or after changes nothing
    alone = augment_texts(TEXTS[:1], config)
    assert first[: len(alone)] == alone
    assert augment_texts(TEXTS, AugmentConfig(n_per_example=4, seed=8)) != first


def test_copies_equal_to_the_source_or_an_excluded_text_are_dropped():
    config = AugmentConfig(n_per_example=5, mask_prob=0.0, ngram_prob=0.0, drop_prob=0.0, swap_prob=1.0)
    out = augment_texts(["hello"], config)  # one word: every swap gives the source back
    assert out == []
    config = AugmentConfig(n_per_example=20, mask_prob=0.0, ngram_prob=1.0, max_ngram=1)
    out = augment_texts(["play jazz"], config, exclude={"jazz"})
    assert out == ["play"]


def test_mask_token_none_removes_the_word():
    config = AugmentConfig(n_per_example=1, mask_prob=1.0, ngram_prob=0.0)
    assert augment_texts(["a b c"], config, mask_token=None) == []  # every word removed: nothing left to keep
    assert augment_texts(["a b c"], config, mask_token="<mask>") == ["<mask> <mask> <mask>"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_per_example": 0}, "n_per_example must be an integer >= 1"),
        ({"mask_prob": 1.5}, r"augment.mask_prob must be a probability in \[0, 1\]"),
        ({"drop_prob": float("nan")}, "augment.drop_prob must be a probability"),
        ({"max_ngram": 0}, "max_ngram must be an integer >= 1"),
        ({"mask_prob": 0, "ngram_prob": 0}, "every operator probability is 0"),
    ],
)
def test_invalid_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentConfig(**kwargs)
