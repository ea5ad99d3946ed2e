"""Block copying, shared by the adapters' :meth:`~hf_spectralkd.adapters.ModelAdapter.copy_blocks`: a student of the
teacher's architecture whose block ``j`` is the teacher's block ``init_layers[j]`` (``hidden_states`` indexing:
1 = first block) and whose other weights (embeddings, norms, head) are the teacher's, as DistilBERT was built."""

from __future__ import annotations

import re

__all__ = ["check_block_indices", "copy_block_weights"]


def check_block_indices(init_layers, num_blocks: int) -> None:
    """Raise ``ValueError`` when a teacher block of ``init_layers`` is not in ``1..num_blocks``."""
    bad = [i for i in init_layers if not 1 <= i <= num_blocks]
    if bad:
        raise ValueError(f"student.init_layers {bad} out of range: the teacher has {num_blocks} blocks, valid layers "
                         f"are 1..{num_blocks}")


def copy_block_weights(teacher, student, prefix: str, init_layers) -> None:
    """Load ``student`` with the teacher's weights: ``<prefix>.<j>.*`` from ``<prefix>.<init_layers[j]-1>.*``,
    every other tensor under its own name (cloned: the student shares no tensor with the teacher)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    source = teacher.state_dict()
    target = {}
    for key in student.state_dict():
        match = pattern.match(key)
        teacher_key = f"{prefix}.{init_layers[int(match.group(1))] - 1}.{match.group(2)}" if match else key
        target[key] = source[teacher_key].clone()
    student.load_state_dict(target, strict=True)
