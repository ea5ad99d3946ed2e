"""F1 as an ``evaluate`` metric module, shipped with hf_spectralkd so it loads offline.

``evaluate.load("f1")`` fetches the module from the Hub; ``evaluate.load(<this directory>)`` does not.
Same inputs and output as the Hub's ``f1`` module (computed with scikit-learn); use ``average="macro"`` for
macro-F1 over classes.
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

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
_CITATION = """@article{scikit-learn, title={Scikit-learn: Machine Learning in {P}ython}, author={Pedregosa, F. and others},
journal={Journal of Machine Learning Research}, volume={12}, pages={2825--2830}, year={2011}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.f1_score.html"],
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None, zero_division=0):
        score = f1_score(
            references, predictions, labels=labels, pos_label=pos_label, average=average,
            sample_weight=sample_weight, zero_division=zero_division,
        )
        return {"f1": float(score) if getattr(score, "size", 1) == 1 else score}
