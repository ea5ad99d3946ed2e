"""``build_student``: a smaller student made from the teacher's own blocks (DistilBERT's initialisation), for
transformers sequence classifiers and timm ViT-style models.

Which blocks are copied matters (on CLINC150 the choice is worth ~4 points, benchmarks/README.md): the default
``"uniform"`` spreads them over the depth ending at the last block (``[2, 4, 6]`` of 6), ``"topk"`` / ``"ends"``
pick them by the teacher's spectral intensity (pass a ``profile`` or a ``dataloader`` to measure it on), and a
list names them (``hidden_states`` indexing: 1 = first block).
"""

from __future__ import annotations

from .adapters import get_adapter, unwrap_model
from .layer_map import choose_init_layers

__all__ = ["build_student", "student_init_layers"]


def student_init_layers(teacher, num_layers: int, init_layers="uniform", profile=None, dataloader=None) -> list:
    """The teacher blocks (1-based) a ``num_layers``-block student copies, from ``init_layers``: a list,
    ``"uniform"``, ``"last"``, ``"topk"`` / ``"ends"`` ranked by the teacher's spectral intensity, or ``"entropy"`` by
    its spectral entropy (the rule:
    :func:`~hf_spectralkd.layer_map.choose_init_layers`)."""
    adapter = get_adapter(teacher)
    n = adapter.num_layers(teacher)
    ranked = init_layers in ("topk", "ends", "entropy")
    if ranked and profile is None and dataloader is None:
        raise ValueError(
            f"init_layers={init_layers!r} ranks the teacher's blocks by spectral intensity: pass profile= (from "
            "hf_spectralkd.analyze or collect_profile) or dataloader= (batches of the teacher's inputs)"
        )
    if ranked and profile is None:
        from .analysis import collect_profile

        profile = collect_profile(teacher, dataloader, adapter=adapter)
    intensity = profile.intensity if ranked else None
    entropy = getattr(profile, "entropy", None) if init_layers == "entropy" else None
    return choose_init_layers(init_layers, num_layers, n, intensity, entropy=entropy)


def build_student(teacher, num_layers: int, init_layers="uniform", *, profile=None, dataloader=None,
                  config_overrides: dict | None = None):
    """A student of the teacher's class with ``num_layers`` blocks copied from the teacher.

    Embeddings, classifier head (and pooler / norm) are copied as they are; student block ``j`` is teacher block
    ``init_layers[j]``. Works for transformers sequence classifiers (any model whose blocks are one
    ``ModuleList``) and timm ViT-style models (``blocks``). The returned model is in training mode and shares no
    tensor with the teacher.

    Args:
        teacher: the fine-tuned teacher model.
        num_layers: number of student blocks (1..teacher's blocks).
        init_layers: ``"uniform"`` (default), ``"topk"``, ``"ends"`` or a list of teacher blocks (1-based).
        profile: the teacher's ``SpectralProfile`` for ``"topk"`` / ``"ends"``; or
        dataloader: batches of teacher inputs to measure it on.
        config_overrides: other config values of the student (not its widths: the copied weights must fit).

    Example::

        student = build_student(teacher, num_layers=3)                        # blocks [2, 4, 6] of 6
        student = build_student(teacher, 3, "topk", profile=analyze(teacher, data, tokenizer=tok))
    """
    layers = student_init_layers(teacher, num_layers, init_layers, profile, dataloader)
    base = unwrap_model(teacher, peft=True)
    return get_adapter(base).copy_blocks(base, layers, config_overrides).train()
