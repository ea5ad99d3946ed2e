#!/usr/bin/env python
"""Distil a fine-tuned text classifier into a smaller student with SpectralKD.

The shape of transformers' ``examples/pytorch/text-classification/run_classification.py``: dataclass arguments
through ``HfArgumentParser`` (command line, or one ``.yaml`` / ``.json`` file), ``datasets`` loading of local
files or a Hub dataset, tokenisation, ``DataCollatorWithPadding`` and ``compute_metrics``. What differs from a
plain ``Trainer`` script: the import, ``SpectralDistillationConfig`` for ``TrainingArguments``,
``SpectralDistillationTrainer`` for ``Trainer``, the ``teacher_model=`` argument and ``build_student``.

Offline, on the teacher the README's set-up command trains (the packaged MiniLM fine-tuned on CLINC150):

    python examples/run_distillation.py --teacher runs/clinc150_minilm/teacher \\
        --train_file hf_spectralkd/data/clinc150/train.jsonl \\
        --validation_file hf_spectralkd/data/clinc150/validation.jsonl \\
        --output_dir runs/example_student --num_train_epochs 2 --learning_rate 1e-4 --eval_strategy epoch
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, HfArgumentParser

from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, build_student
from hf_spectralkd.loading import resolve_model_reference


@dataclass
class ModelArguments:
    teacher: str = field(metadata={"help": "The fine-tuned teacher: local directory, Hub id or packaged:minilm."})
    student_num_layers: int = field(default=3, metadata={"help": "Blocks of the student (copied from the teacher)."})
    student_init_layers: str = field(
        default="uniform", metadata={"help": "Teacher blocks to copy: 'uniform' or a comma list such as '2,4,6'."}
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset id (instead of files)."})
    train_file: str | None = field(default=None, metadata={"help": "A csv / json / jsonl training file."})
    validation_file: str | None = field(default=None, metadata={"help": "A csv / json / jsonl validation file."})
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    label_column: str = field(default="label", metadata={"help": "Column holding the label name."})
    max_seq_length: int = field(default=64, metadata={"help": "Tokens kept per example."})
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
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_path)
    label2id = teacher.config.label2id

    init = model_args.student_init_layers
    init_layers = init if not init[:1].isdigit() else [int(i) for i in init.split(",")]
    student = build_student(teacher, model_args.student_num_layers, init_layers)

    def preprocess(batch):
        unknown = sorted({label for label in batch[data_args.label_column] if label not in label2id})
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not in the teacher's label2id")
        encoded = tokenizer(batch[data_args.text_column], truncation=True, max_length=data_args.max_seq_length)
        encoded["labels"] = [label2id[label] for label in batch[data_args.label_column]]
        return encoded

    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}
    for split, limit in limits.items():
        if split in raw and limit is not None:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
    with training_args.main_process_first(desc="tokenisation"):
        data = raw.map(preprocess, batched=True, remove_columns=raw["train"].column_names)

    def compute_metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {"accuracy": float((predicted == prediction.label_ids).mean())}

    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
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
