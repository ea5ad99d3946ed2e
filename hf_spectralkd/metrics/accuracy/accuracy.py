"""Accuracy as an ``evaluate`` metric module, shipped with hf_spectralkd so it loads offline.

``evaluate.load("accuracy")`` fetches the module from the Hub; ``evaluate.load(<this directory>)`` does not.
Same inputs and output as the Hub's ``accuracy`` module (computed with scikit-learn).
"""

import evaluate
from sklearn.metrics import accuracy_score

from hf_spectralkd.metrics import sklearn_metric_info

_DESCRIPTION = "Accuracy: the fraction of predictions equal to the references."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): ground-truth labels.
    normalize (`bool`, defaults to `True`): return the fraction (True) or the count (False) of correct predictions.
    sample_weight (`list` of `float`, optional): sample weights.
Returns:
    accuracy (`float` or `int`).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return sklearn_metric_info(
            _DESCRIPTION, _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.accuracy_score.html",
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        score = accuracy_score(references, predictions, normalize=normalize, sample_weight=sample_weight)
        return {"accuracy": float(score) if normalize else int(score)}
