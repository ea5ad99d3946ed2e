"""Shared fixtures: tiny models built from configs and a small learnable token-classification task.

Everything is offline (HF_HUB_OFFLINE=1) and small enough to train a few steps in well under a second.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "hf_spectralkd", "data", "clinc150")
NUM_LABELS = 3
VOCAB = 60


def tiny_bert(num_layers=4, hidden=32, num_labels=NUM_LABELS, seed=0, **kwargs):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        num_labels=num_labels,
        **kwargs,
    )
    return BertForSequenceClassification(config)


def tiny_roberta(num_layers=4, hidden=32, num_labels=NUM_LABELS, seed=0):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=70,
        num_labels=num_labels,
        pad_token_id=1,
    )
    return RobertaForSequenceClassification(config)


def make_token_rows(n=64, seed=0, min_len=4, max_len=12, fixed_len=None):
    """A learnable task: the label is the first token id modulo NUM_LABELS."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = fixed_len or int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        ids = torch.randint(5, VOCAB, (length,), generator=g).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": ids[0] % NUM_LABELS})
    return rows


def pad_collate(batch, pad_id=0):
    """Dynamic right-padding collator for rows of make_token_rows."""
    length = max(len(x["input_ids"]) for x in batch)
    return {
        "input_ids": torch.tensor([x["input_ids"] + [pad_id] * (length - len(x["input_ids"])) for x in batch]),
        "attention_mask": torch.tensor(
            [x["attention_mask"] + [0] * (length - len(x["attention_mask"])) for x in batch]
        ),
        "labels": torch.tensor([x["labels"] for x in batch]),
    }


@pytest.fixture
def token_dataset():
    from datasets import Dataset

    return Dataset.from_list(make_token_rows())


@pytest.fixture
def bert_pair():
    """(teacher with 4 blocks / hidden 32, student with 2 blocks / hidden 16)."""
    return tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)


def small_config(tmp_path, **overrides):
    from hf_spectralkd import SpectralDistillationConfig

    values = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    values.update(overrides)
    return SpectralDistillationConfig(**values)
