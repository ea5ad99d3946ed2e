"""The one tokeniser of the token task: words -> sub-word ids, tags -> per-token ``labels`` and a ``kd_mask``.

Alignment as in transformers' ``examples/pytorch/token-classification/run_ner.py``: the first sub-word of each word
carries the word's tag, the other sub-words ``-100`` (``data.label_all_tokens``: every sub-word carries it, a
``B-`` tag becoming its ``I-`` tag after the first), special tokens ``-100``. ``kd_mask`` is 1 on exactly the
positions that rule labels, for every row: an unlabelled transfer row (its tags all ``-100``) has labels all ``-100``
and still says, by its ``kd_mask``, on which positions the student learns the teacher's distribution.
"""

from __future__ import annotations

from ...constants import KD_MASK_COLUMN
from ...sampling import IGNORE_INDEX

__all__ = ["begin_to_inside", "align_labels", "tokenize_words", "tokenize_splits", "token_collator"]


def begin_to_inside(label_names) -> list:
    """Per tag id, the id a continuation sub-word gets with ``label_all_tokens``: ``B-X`` -> ``I-X`` (when the label
    set has it), every other tag itself (``run_ner.py``'s ``b_to_i_label``)."""
    names = list(label_names or [])
    index = {name: i for i, name in enumerate(names)}
    return [index.get(f"I-{name[2:]}", i) if name.startswith("B-") else i for i, name in enumerate(names)]


def align_labels(word_ids, tags, label_all_tokens: bool = False, b_to_i=None) -> tuple:
    """``(labels, kd_mask)`` of one tokenised row: ``word_ids`` from the tokenizer (None on special tokens), ``tags``
    the word's tag ids (``-100`` for an unlabelled word)."""
    labels, mask, previous = [], [], None
    for word in word_ids:
        if word is None:
            labels.append(IGNORE_INDEX)
            mask.append(0)
        elif word != previous:
            labels.append(tags[word])
            mask.append(1)
        elif label_all_tokens:
            tag = tags[word]
            labels.append(b_to_i[tag] if b_to_i is not None and tag != IGNORE_INDEX else tag)
            mask.append(1)
        else:
            labels.append(IGNORE_INDEX)
            mask.append(0)
        previous = word
    return labels, mask


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"token-classification needs a fast tokenizer (it maps sub-words to words); "
                         f"{type(tokenizer).__name__} is not one: save the teacher with its tokenizer.json")


def tokenize_words(dataset, tokenizer, max_length: int | None = 128, label_all_tokens: bool = False,
                   label_names=None, keep=(), desc: str = "tokenizing words"):
    """``dataset`` (``tokens`` word lists, ``tags`` tag ids when present) tokenised with ``is_split_into_words``
    (truncation at ``max_length``, no padding): model inputs, ``labels`` and ``kd_mask``; other columns dropped
    except ``keep``. Rows without ``tags`` get labels all -100 and a word-start ``kd_mask``."""
    import datasets

    if not isinstance(dataset, datasets.Dataset):
        dataset = datasets.Dataset.from_list(list(dataset))
    _check_fast(tokenizer)
    b_to_i = begin_to_inside(label_names) if label_all_tokens else None
    has_tags = "tags" in dataset.column_names

    def encode(batch):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        labels, masks = [], []
        for i, words in enumerate(batch["tokens"]):
            tags = batch["tags"][i] if has_tags else [IGNORE_INDEX] * len(words)
            row_labels, row_mask = align_labels(encoded.word_ids(batch_index=i), tags, label_all_tokens, b_to_i)
            labels.append(row_labels)
            masks.append(row_mask)
        encoded["labels"] = labels
        encoded[KD_MASK_COLUMN] = masks
        return encoded

    drop = [c for c in dataset.column_names if c not in set(keep)]
    return dataset.map(encode, batched=True, remove_columns=drop, desc=desc)


def tokenize_splits(splits, tokenizer, section, label_names=None):
    """Every split of a ``DatasetDict`` tokenised (``section``: the recipe's data section)."""
    import datasets

    return datasets.DatasetDict({
        name: tokenize_words(split, tokenizer, section.max_length, section.label_all_tokens, label_names,
                             desc=f"tokenizing {name} words")
        for name, split in splits.items()
    })


def token_collator(tokenizer):
    """Pads ``input_ids`` / ``labels`` (-100) / ``kd_mask`` (0) per batch."""
    from ...adapters.heads import DataCollatorForTokenDistillation

    return DataCollatorForTokenDistillation(tokenizer)
