#!/usr/bin/env python
"""Distil a fine-tuned token classifier (NER, slot filling) into a smaller student with SpectralKD.

The shape of transformers' ``examples/pytorch/token-classification/run_ner.py``: dataclass arguments through
``HfArgumentParser`` (command line, or one ``.yaml`` / ``.json`` file), word lists and tag lists from local files
or a Hub dataset, ``tokenize_and_align_labels`` (the first sub-word of each word labelled, the others -100, or
all of them with ``--label_all_tokens``), ``DataCollatorForTokenClassification`` and seqeval's entity-level
F1. What differs from a plain ``Trainer`` script: the import, ``SpectralDistillationConfig`` for
``TrainingArguments``, ``SpectralDistillationTrainer`` for ``Trainer``, the ``teacher_model=`` argument and
``build_student``; the KD term then runs over the labelled positions (docs/tasks.md).

Offline, on ATIS slot filling (the shared data set) with a fine-tuned token-classification teacher:

    python examples/run_ner_distillation.py --teacher runs/atis_slots_minilm/teacher \\
        --train_file ../shared/datasets/atis/train.jsonl --validation_file ../shared/datasets/atis/validation.jsonl \\
        --text_column_name tokens --label_column_name tags \\
        --output_dir runs/example_ner_student --num_train_epochs 3 --learning_rate 1e-4 --eval_strategy epoch
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
from datasets import load_dataset
from seqeval.metrics import f1_score, precision_score, recall_score
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    HfArgumentParser,
)

from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, build_student
from hf_spectralkd.loading import resolve_model_reference


@dataclass
class ModelArguments:
    teacher: str = field(metadata={"help": "The fine-tuned token classifier: local directory or Hub id."})
    student_num_layers: int = field(default=3, metadata={"help": "Blocks of the student (copied from the teacher)."})
    student_init_layers: str = field(
        default="uniform", metadata={"help": "Teacher blocks to copy: 'uniform' or a comma list such as '2,4,6'."}
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id (instead of files)."})
    train_file: str | None = field(default=None, metadata={"help": "A csv / json / jsonl training file."})
    validation_file: str | None = field(default=None, metadata={"help": "A csv / json / jsonl validation file."})
    text_column_name: str = field(default="tokens", metadata={"help": "Column holding the list of words."})
    label_column_name: str = field(default="ner_tags", metadata={"help": "Column holding the list of tags."})
    max_seq_length: int = field(default=128, metadata={"help": "Tokens kept per example."})
    label_all_tokens: bool = field(
        default=False, metadata={"help": "Label every sub-word of a word (default: the first only, others -100)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set."})


def parse_args(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, SpectralDistillationConfig))
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(argv)


def load_raw_datasets(data_args: DataArguments):
    if data_args.dataset_name is not None:
        return load_dataset(data_args.dataset_name)
    files = {"train": data_args.train_file, "validation": data_args.validation_file}
    files = {split: path for split, path in files.items() if path}
    if "train" not in files:
        raise ValueError("give --dataset_name or --train_file")
    extension = files["train"].rsplit(".", 1)[-1]
    return load_dataset("json" if extension in ("json", "jsonl") else extension, data_files=files)


def main(argv=None):
    model_args, data_args, training_args = parse_args(argv)
    raw = load_raw_datasets(data_args)
    teacher_path = resolve_model_reference(model_args.teacher, what="--teacher")
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    teacher = AutoModelForTokenClassification.from_pretrained(teacher_path)
    label2id = teacher.config.label2id
    id2label = {int(i): label for i, label in teacher.config.id2label.items()}

    init = model_args.student_init_layers
    init_layers = init if not init[:1].isdigit() else [int(i) for i in init.split(",")]
    student = build_student(teacher, model_args.student_num_layers, init_layers)

    words_column, tags_column = data_args.text_column_name, data_args.label_column_name

    def tag_id(tag):
        return label2id[tag] if isinstance(tag, str) else int(tag)  # tag names, or ids (Hub ClassLabel sequences)

    def tokenize_and_align_labels(batch):
        unknown = sorted({t for tags in batch[tags_column] for t in tags if isinstance(t, str) and t not in label2id})
        if unknown:
            raise ValueError(f"tags {unknown[:5]} are not in the teacher's label2id")
        encoded = tokenizer(batch[words_column], truncation=True, max_length=data_args.max_seq_length,
                            is_split_into_words=True)
        labels = []
        for i, tags in enumerate(batch[tags_column]):
            previous, row = None, []
            for word in encoded.word_ids(batch_index=i):
                if word is None:
                    row.append(-100)  # special tokens
                elif word != previous:
                    row.append(tag_id(tags[word]))  # the first sub-word of a word
                else:
                    row.append(tag_id(tags[word]) if data_args.label_all_tokens else -100)
                previous = word
            labels.append(row)
        encoded["labels"] = labels
        return encoded

    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    for split, limit in limits.items():
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    with training_args.main_process_first(desc="tokenisation"):
        data = raw.map(tokenize_and_align_labels, batched=True, remove_columns=raw["train"].column_names)

    def compute_metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        true_tags, predicted_tags = [], []
        for pred_row, label_row in zip(predicted, prediction.label_ids, strict=True):
            kept = [(p, gold) for p, gold in zip(pred_row, label_row, strict=True) if gold != -100]
            true_tags.append([id2label[int(gold)] for _, gold in kept])
            predicted_tags.append([id2label[int(p)] for p, _ in kept])
        correct = sum(p == t for row_p, row_t in zip(predicted_tags, true_tags, strict=True)
                      for p, t in zip(row_p, row_t, strict=True))
        return {
            "precision": precision_score(true_tags, predicted_tags, zero_division=0),
            "recall": recall_score(true_tags, predicted_tags, zero_division=0),
            "f1": f1_score(true_tags, predicted_tags, zero_division=0),
            "accuracy": correct / max(sum(len(row) for row in true_tags), 1),
        }

    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=compute_metrics,
    )
    result = trainer.train()
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    if "validation" in data:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return trainer


if __name__ == "__main__":
    main()
