"""Metrics of the pipeline's tasks: sequence and image classification through ``evaluate``, loaded from the modules
shipped in this folder (no Hub needed); token classification through ``seqeval`` (entity-level precision, recall
and F1 as ``run_ner.py`` and evaluate's ``seqeval`` module compute them, plus token accuracy).

Each task names its metrics (:func:`task_metrics`, the results.json ``metrics`` keys in table order) and its primary
metric (:func:`primary_metric`, the first): the teacher's best epoch, the recommendation between the distilled
student and the no-KD baseline, the summary and the model card read it."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["METRICS_DIR", "SKLEARN_CITATION", "load_metric", "compute_metrics", "sklearn_metric_info",
           "token_metrics", "task_metrics", "primary_metric", "metric_label", "METRIC_LABELS"]

METRICS_DIR = os.path.dirname(os.path.abspath(__file__))
_CACHE: dict = {}
# the results.json metrics of each task, in table order; the first is the task's primary metric
CLASSIFICATION_METRICS = ("accuracy", "macro_f1")
TASK_METRICS = {"token-classification": ("f1", "precision", "recall", "accuracy")}
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "f1": "F1", "precision": "precision",
                 "recall": "recall"}


def task_metrics(task: str | None) -> tuple:
    """The ``metrics`` keys of ``task``'s evaluations, in table order (accuracy and macro-F1 by default)."""
    return TASK_METRICS.get(task or "", CLASSIFICATION_METRICS)


def primary_metric(task: str | None) -> str:
    """The metric ``task`` is judged by: accuracy for classification, entity F1 for token classification."""
    return task_metrics(task)[0]


def metric_label(key: str) -> str:
    """How a summary or a sentence names the metric ``key`` (``macro-F1``, ``F1``, ...)."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


def load_metric(name: str):
    """``evaluate.load`` of the shipped module ``name`` (``accuracy`` or ``f1``)."""
    import evaluate

    path = os.path.join(METRICS_DIR, name)
    if not os.path.isfile(os.path.join(path, f"{name}.py")):
        available = sorted(d for d in os.listdir(METRICS_DIR)
                           if os.path.isfile(os.path.join(METRICS_DIR, d, f"{d}.py")))
        raise ValueError(f"no shipped metric module {name!r}: available are {', '.join(available)}")
    if name not in _CACHE:
        _CACHE[name] = evaluate.load(path)
    return _CACHE[name]


SKLEARN_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython},
author={Pedregosa, F. and others}, journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830},
year={2011}}"""


def sklearn_metric_info(description: str, inputs_description: str, reference_url: str):
    """The ``evaluate.MetricInfo`` the shipped modules share: integer predictions and references, computed with
    scikit-learn (each module file is loaded on its own by ``evaluate.load``, so the common part lives here)."""
    import datasets
    import evaluate

    return evaluate.MetricInfo(
        description=description,
        citation=SKLEARN_CITATION,
        inputs_description=inputs_description,
        features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
        reference_urls=[reference_url],
    )


def compute_metrics(eval_pred) -> dict:
    """``Trainer`` ``compute_metrics``: accuracy and macro-F1 of the arg-max predictions (fractions in [0, 1])."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    predictions = np.asarray(logits).argmax(axis=-1)
    labels = np.asarray(labels)
    accuracy = load_metric("accuracy").compute(predictions=predictions, references=labels)["accuracy"]
    macro_f1 = load_metric("f1").compute(predictions=predictions, references=labels, average="macro")["f1"]
    return {"accuracy": float(accuracy), "macro_f1": float(macro_f1)}


def token_metrics(label_names):
    """``Trainer`` ``compute_metrics`` of a token classifier whose class ids name ``label_names`` (BIO tags):
    entity-level ``precision`` / ``recall`` / ``f1`` (``seqeval``, micro-averaged over entity types, CoNLL
    evaluation as in ``run_ner.py``) and token ``accuracy``, over the positions whose label is not -100."""
    from ..sampling import IGNORE_INDEX  # positions without a label: special tokens, padding, non-first sub-words

    names = list(label_names)

    def compute(eval_pred) -> dict:
        from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        predictions = np.asarray(logits).argmax(axis=-1)
        references, predicted = [], []
        for row_predictions, row_labels in zip(predictions, np.asarray(labels), strict=True):
            keep = row_labels != IGNORE_INDEX
            if keep.any():
                references.append([names[i] for i in row_labels[keep]])
                predicted.append([names[i] for i in row_predictions[keep]])
        if not references:
            return dict.fromkeys(TASK_METRICS["token-classification"], 0.0)
        return {
            "f1": float(f1_score(references, predicted, zero_division=0)),
            "precision": float(precision_score(references, predicted, zero_division=0)),
            "recall": float(recall_score(references, predicted, zero_division=0)),
            "accuracy": float(accuracy_score(references, predicted)),
        }

    return compute
