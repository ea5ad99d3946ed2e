"""The method's paper and the Hub tags of a SpectralKD student: read by the trainer and the model cards."""

TAG_NAMES = ["hf_spectralkd", "distillation", "spectralkd"]
METHOD_NAME = "SpectralKD"
LOGIT_KD_NAME = "logit KD"  # beta = 0: no frequency term, no spectral selection; what ran is plain soft-logit KD


#: the method named after a run's ``alignment`` (SpectralKD's frequency term, or one of the alternatives)
ALIGNMENT_METHOD_NAMES = {"mse": "hidden-state MSE KD", "attention": "attention-transfer KD (MiniLM)"}


def method_name(distillation: dict | None) -> str:
    """The method a run used, from its ``distillation`` values: SpectralKD, logit KD when ``beta`` is 0, or the
    alignment's own name (``alignment`` mse / attention)."""
    beta = (distillation or {}).get("beta")
    if beta is not None and float(beta) == 0.0:
        return LOGIT_KD_NAME
    return ALIGNMENT_METHOD_NAMES.get((distillation or {}).get("alignment") or "frequency", METHOD_NAME)
PAPER = {
    "title": (
        "SpectralKD: A Unified Framework for Interpreting and Distilling Vision Transformers via Spectral Analysis"
    ),
    "id": "2412.19055",
    "citation": (
        "@article{tian2024spectralkd,\n"
        "  title   = {{SpectralKD: A Unified Framework for Interpreting and Distilling Vision Transformers"
        " via Spectral Analysis}},\n"
        "  author  = {Tian, Huiyuan and Xu, Bonan and Li, Shijian and Pan, Gang},\n"
        "  journal = {arXiv preprint arXiv:2412.19055},\n"
        "  year    = {2024}\n"
        "}"
    ),
}
