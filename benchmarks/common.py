"""Shared pieces of the benchmarks: CLINC150 rows and batches, the MiniLM teacher, students copied from
teacher layers, and the hidden-state MSE baseline trainer."""

from __future__ import annotations

import json
import os
import platform
import random
import re
from datetime import datetime, timezone

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_spectralkd import SpectralDistillationTrainer, hidden_mse_loss, utils  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLINC_DIR = os.path.join(ROOT, "hf_spectralkd", "data", "clinc150")
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results")


def load_clinc(split: str, limit=None, seed=None) -> list:
    """Rows ``{"text", "label"}`` of the shipped CLINC150 split (in-scope intents); seeded subset with ``limit``."""
    with open(os.path.join(CLINC_DIR, f"{split}.jsonl"), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def label_names() -> list:
    return sorted({row["label"] for row in load_clinc("train")})


def tokenize_batches(tokenizer, rows, label2id, batch_size=32, max_length=64) -> list:
    """Fixed list of dynamically padded batches (each padded to its own longest row)."""
    batches = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        enc = tokenizer(
            [r["text"] for r in chunk], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        enc = dict(enc)
        enc["labels"] = torch.tensor([label2id[r["label"]] for r in chunk])
        batches.append(enc)
    return batches


def teacher_from_packaged(num_labels=150, id2label=None, path=None):
    """The packaged MiniLM-L6 (or the model at ``path``) with a fresh ``num_labels`` head, and its tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if path is None:
        from hf_spectralkd.loading import packaged_minilm_path

        path = packaged_minilm_path()
    kwargs = {"num_labels": num_labels, "dtype": torch.float32}
    if id2label:
        kwargs.update(id2label=dict(enumerate(id2label)), label2id={n: i for i, n in enumerate(id2label)})
    model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    return model, AutoTokenizer.from_pretrained(path)


def student_from_teacher(teacher, layers, seed=None):
    """A student with ``len(layers)`` blocks: embeddings, pooler and head copied from the teacher, block ``j``
    copied from teacher block ``layers[j]`` (``hidden_states`` indices: 1 = first block)."""
    import copy

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    if seed is not None:
        torch.manual_seed(seed)
    student = type(teacher)(config)
    source = teacher.state_dict()
    pattern = re.compile(r"(.*\.layer\.)(\d+)(\..*)")
    state = {}
    for key in student.state_dict():
        match = pattern.match(key)
        if match:
            j = int(match.group(2))
            state[key] = source[f"{match.group(1)}{layers[j] - 1}{match.group(3)}"].clone()
        else:
            state[key] = source[key].clone()
    student.load_state_dict(state)
    return student


def uniform_layers(num_teacher_layers: int, k: int) -> list:
    from hf_spectralkd import select_layers

    return select_layers([0.0] * (num_teacher_layers + 1), k, strategy="uniform")


def masked_hidden_mse(student_hidden, teacher_hidden, attention_mask=None):
    """Mean squared error over the real tokens (the DistilBERT/TinyBERT-style hidden-state loss): the library's
    ``alignment="mse"`` term, :func:`hf_spectralkd.hidden_mse_loss`."""
    return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask)


class HiddenMSEDistillationTrainer(SpectralDistillationTrainer):
    """Baseline: the same CE + logit-KD objective, with a masked hidden-state MSE on the mapped layer pairs in
    place of the frequency-alignment term (``beta`` weighs it; logged as ``freq_loss``). Layer map:
    ``teacher_layers`` / ``student_layers``."""

    def alignment_loss(self, student_hidden, teacher_hidden, attention_mask):
        return masked_hidden_mse(student_hidden, teacher_hidden, attention_mask)


def machine_info(shared: bool = True) -> dict:
    import transformers

    info = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "shared_machine": shared,
    }
    return info


def write_json(path: str, data: dict) -> str:
    """Write a results file atomically, creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return utils.write_json(path, data, indent=1)
