"""The one tokeniser of the text task: training splits, the spectral analysis and the teacher cache all
tokenise through :func:`tokenize`, so the cache's fingerprint and the trainer's inputs agree."""

from __future__ import annotations

__all__ = ["tokenize", "tokenize_splits", "text_collator", "check_text_columns"]


def check_text_columns(column_names, text_column: str, text_pair_column: str | None = None,
                       where: str = "the data") -> None:
    """Raise ``ValueError`` naming the option of a text column that ``column_names`` lacks."""
    for option, column in (("--text-column", text_column), ("--text-pair-column", text_pair_column)):
        if column is not None and column not in column_names:
            raise ValueError(f"{option} {column!r} not found in {where}: the columns are {list(column_names)}")


def tokenize(dataset, tokenizer, text_column: str = "text", text_pair_column: str | None = None,
             max_length: int | None = 128, keep=(), label_column: str | None = None, desc: str = "tokenizing"):
    """``dataset`` tokenised (truncation at ``max_length``, no padding: a collator pads per batch).

    Every column is replaced by the tokenizer's outputs, except those in ``keep``; with ``label_column`` its
    values become a ``labels`` column. A list of dicts is turned into a ``datasets.Dataset`` first.
    """
    import datasets

    if not isinstance(dataset, datasets.Dataset):
        dataset = datasets.Dataset.from_list(list(dataset))
    check_text_columns(dataset.column_names, text_column, text_pair_column)

    def encode(batch):
        pairs = batch[text_pair_column] if text_pair_column else None
        encoded = tokenizer(batch[text_column], pairs, truncation=True, max_length=max_length)
        if label_column is not None:
            encoded["labels"] = batch[label_column]
        return encoded

    drop = [c for c in dataset.column_names if c not in set(keep)]
    return dataset.map(encode, batched=True, remove_columns=drop, desc=desc)


def tokenize_splits(splits, tokenizer, section):
    """Tokenize every split of a ``DatasetDict`` (``section``: the recipe's data section) with ``labels``."""
    import datasets

    return datasets.DatasetDict({
        name: tokenize(split, tokenizer, section.text_column, section.text_pair_column, section.max_length,
                       label_column="label")
        for name, split in splits.items()
    })


def text_collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)
