"""The shipped ``evaluate`` metric modules (loaded from the package folder, no Hub) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from hf_spectralkd.metrics import SKLEARN_CITATION, compute_metrics, load_metric

PREDICTIONS = [0, 1, 2, 2, 1, 0, 2]
REFERENCES = [0, 2, 2, 1, 1, 0, 0]


def test_accuracy_module_matches_sklearn():
    metric = load_metric("accuracy")
    assert metric.compute(predictions=PREDICTIONS, references=REFERENCES)["accuracy"] == pytest.approx(4 / 7)
    assert metric.compute(predictions=PREDICTIONS, references=REFERENCES, normalize=False)["accuracy"] == 4
    assert 4 / 7 == pytest.approx(accuracy_score(REFERENCES, PREDICTIONS))


def test_f1_module_matches_sklearn():
    metric = load_metric("f1")
    macro = metric.compute(predictions=PREDICTIONS, references=REFERENCES, average="macro")["f1"]
    assert macro == pytest.approx(f1_score(REFERENCES, PREDICTIONS, average="macro"))
    per_class = metric.compute(predictions=PREDICTIONS, references=REFERENCES, average=None)["f1"]
    np.testing.assert_allclose(per_class, [0.8, 0.5, 0.4])


def test_modules_share_the_sklearn_info():
    for name, function in (("accuracy", "accuracy_score"), ("f1", "f1_score")):
        info = load_metric(name).info
        assert info.citation == SKLEARN_CITATION
        assert info.reference_urls == [f"https://scikit-learn.org/stable/modules/generated/sklearn.metrics.{function}.html"]
        assert set(info.features) == {"predictions", "references"}


def test_compute_metrics_of_logits():
    logits = np.eye(3)[PREDICTIONS] + 0.1
    result = compute_metrics(type("EvalPrediction", (), {"predictions": (logits,), "label_ids": np.array(REFERENCES)}))
    assert result == {"accuracy": pytest.approx(4 / 7), "macro_f1": pytest.approx((0.8 + 0.5 + 0.4) / 3)}


def test_unknown_metric_names_the_shipped_ones():
    with pytest.raises(ValueError, match="no shipped metric module 'bleu': available are accuracy, f1"):
        load_metric("bleu")
