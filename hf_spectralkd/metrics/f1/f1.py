"""F1 as an ``evaluate`` metric module, shipped with hf_spectralkd so it loads offline.

``evaluate.load("f1")`` fetches the module from the Hub; ``evaluate.load(<this directory>)`` does not.
Same inputs and output as the Hub's ``f1`` module (computed with scikit-learn); use ``average="macro"`` for
macro-F1 over classes.
"""

import evaluate
from sklearn.metrics import f1_score

from hf_spectralkd.metrics import sklearn_metric_info

_DESCRIPTION = "F1 = 2 * (precision * recall) / (precision + recall), per class and averaged as `average` says."
_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted labels.
    references (`list` of `int`): ground-truth labels.
    labels (`list` of `int`, optional): the labels to include (default: those present).
    pos_label (`int`, defaults to 1): the positive class for `average="binary"`.
    average (`str`, defaults to `"binary"`): `binary`, `micro`, `macro`, `weighted`, `samples` or None (per class).
    sample_weight (`list` of `float`, optional): sample weights.
    zero_division (defaults to `0`): the value returned for a class with no predictions and no references.
Returns:
    f1 (`float`, or an array of per-class floats with `average=None`).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return sklearn_metric_info(
            _DESCRIPTION, _KWARGS_DESCRIPTION,
            "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html",
        )

    def _compute(
        self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None, zero_division=0
    ):
        score = f1_score(
            references, predictions, labels=labels, pos_label=pos_label, average=average,
            sample_weight=sample_weight, zero_division=zero_division,
        )
        return {"f1": float(score) if getattr(score, "size", 1) == 1 else score}
