"""Metrics through ``evaluate``, loaded from the modules shipped in this folder (no Hub needed)."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["METRICS_DIR", "SKLEARN_CITATION", "load_metric", "compute_metrics", "sklearn_metric_info"]

METRICS_DIR = os.path.dirname(os.path.abspath(__file__))
_CACHE: dict = {}


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
