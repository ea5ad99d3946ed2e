"""Offline validation of a model card's metadata (what the Hub's ``/api/validate-yaml`` would reject)."""

from __future__ import annotations

import os

__all__ = ["validate_model_card"]


def validate_model_card(path_or_text) -> dict:
    """Offline check of a card's metadata, mirroring what the Hub's ``/api/validate-yaml`` rejects.

    ``ModelCard.validate`` posts the card to the Hub, which is unreachable offline; this checks the same things
    locally with ``huggingface_hub``'s own parsers: the YAML block is found by the Hub's regex and is a mapping;
    ``ModelCardData`` accepts it without ``ignore_metadata_errors`` (so the ``model-index`` parses into
    ``EvalResult`` objects and back, unchanged); every model-index result has task type, dataset type and name,
    and numeric metric values; tags are strings; ``base_model`` and ``datasets`` are valid Hub ids. Returns the
    metadata dict; raises ``ValueError`` naming the first problem.
    """
    import yaml
    from huggingface_hub import ModelCardData
    from huggingface_hub.repocard import REGEX_YAML_BLOCK
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    text = os.fspath(path_or_text)
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            text = handle.read()
    match = REGEX_YAML_BLOCK.search(text)
    if not match:
        raise ValueError("model card has no YAML metadata block at the top")
    meta = yaml.safe_load(match.group(2))
    if not isinstance(meta, dict):
        raise ValueError("model card metadata is not a mapping")
    data = ModelCardData(**meta)  # raises ValueError on a model-index it cannot parse
    if "model-index" in meta:
        name, results = model_index_to_eval_results(meta["model-index"])
        if eval_results_to_model_index(name, results) != ModelCardData(**meta).to_dict()["model-index"]:
            raise ValueError("model-index does not survive a round trip through huggingface_hub's EvalResult")
        for entry in meta["model-index"]:
            if not entry.get("name"):
                raise ValueError("model-index entry without a name")
            for result in entry["results"]:
                if not result.get("task", {}).get("type"):
                    raise ValueError("model-index result without task.type")
                if not result.get("dataset", {}).get("type") or not result["dataset"].get("name"):
                    raise ValueError("model-index result without dataset.type / dataset.name")
                for metric in result.get("metrics") or []:
                    if not metric.get("type") or not isinstance(metric.get("value"), (int, float)):
                        raise ValueError(f"model-index metric {metric} needs a type and a numeric value")
    for key in ("tags", "datasets", "metrics"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValueError(f"metadata {key!r} must be a list of strings, got {value!r}")
    for key in ("base_model", "datasets"):
        values = meta.get(key)
        for value in [values] if isinstance(values, str) else (values or []):
            try:
                validate_repo_id(value)
            except HFValidationError as exc:
                raise ValueError(f"metadata {key!r}: {value!r} is not a valid Hub id ({exc})") from exc
    if data.library_name is not None and not isinstance(data.library_name, str):
        raise ValueError("metadata 'library_name' must be a string")
    return meta
