"""The layer rule, written once: which teacher layers are aligned with which student layers, and which teacher
blocks a student built from the teacher copies.

Everything here is pure (lists of indices in, lists out; no model is run): the trainer
(:class:`~hf_spectralkd.SpectralDistillationTrainer`), the recipe pipeline's preflight checks and analysis stage,
``build_student`` and the commands that read ``layer_map.json`` all call these functions.

Indices are ``hidden_states`` indices: 0 = embeddings, ``l`` = block ``l`` (1..n). The pairs of a
:class:`LayerMap` come from a :class:`LayerSelection` (the distillation config's selection fields):

* ``student_layers`` given: those student layers; else the last ``k`` student blocks, ``k`` = the number of
  ``teacher_layers`` given, ``num_aligned_layers``, or every student block;
* ``teacher_layers`` given: those (strategy ``"manual"``); ``beta == 0``: nothing is aligned (``"none"``);
  otherwise ``k`` teacher layers chosen from the teacher's profile by ``layer_selection``
  (:func:`~hf_spectralkd.spectral.select_layers`: ``topk`` / ``ends`` by intensity, ``entropy`` by spectral
  entropy, ``uniform``, ``last``; index 0 only with ``include_embeddings``);
* ``layer_selection="last"`` with no count given aligns one pair, the last student block with the last teacher
  block (last-layer-only alignment, Ko et al. 2023).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields

from .constants import LAYER_MAP_FILENAME
from .spectral import SELECTION_STRATEGIES, select_layers
from .utils import check_layer_range, read_json, write_json

__all__ = [
    "LayerMap",
    "LayerSelection",
    "INIT_RULES",
    "aligned_count",
    "aligned_student_layers",
    "candidate_count",
    "check_layer_arguments",
    "choose_init_layers",
    "pair_layers",
    "select_teacher_layers",
    "selects_layers",
]

#: ``student.init_layers`` rules besides an explicit list: the selection strategies, and ``"selected"`` (the
#: distillation's own choice of teacher layers, for as many pairs as the student has blocks)
INIT_RULES = (*SELECTION_STRATEGIES, "selected")


@dataclass
class LayerMap:
    """Which teacher layer each student layer is aligned with (``hidden_states`` indices)."""

    teacher_layers: list = field(default_factory=list)
    student_layers: list = field(default_factory=list)
    strategy: str = "topk"
    teacher_intensity: list | None = None
    teacher_entropy: list | None = None

    def __post_init__(self):
        if len(self.teacher_layers) != len(self.student_layers):
            raise ValueError(
                f"a layer map pairs layers one to one, but teacher_layers has {len(self.teacher_layers)} entries and "
                f"student_layers {len(self.student_layers)}"
            )

    @property
    def pairs(self) -> list:
        """``(student_layer, teacher_layer)`` tuples, in order."""
        return list(zip(self.student_layers, self.teacher_layers, strict=True))

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        return write_json(os.path.join(directory, LAYER_MAP_FILENAME), {**asdict(self), "pairs": self.pairs}, indent=1)

    @classmethod
    def load(cls, path: str) -> LayerMap:
        """The layer map of a ``layer_map.json`` file, or of the one in directory ``path``; ``ValueError`` when it
        is missing or not a layer map (two integer lists of equal length)."""
        file = os.path.join(path, LAYER_MAP_FILENAME) if os.path.isdir(path) else path
        data = read_json(file)
        try:
            values = {k: v for k, v in data.items() if k != "pairs"}
            values["teacher_layers"] = [int(t) for t in values["teacher_layers"]]
            values["student_layers"] = [int(s) for s in values["student_layers"]]
            return cls(**values)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{file} is not a layer map with student_layers/teacher_layers lists of equal length "
                             f"({exc})") from exc

    @classmethod
    def of_student(cls, directory: str) -> LayerMap:
        """The layer map a trained student's ``directory`` holds; one that aligns nothing when it holds none."""
        if os.path.exists(os.path.join(directory, LAYER_MAP_FILENAME)):
            return cls.load(directory)
        return cls([], [], "none")


@dataclass(frozen=True)
class LayerSelection:
    """The distillation settings the layer rule reads (the fields of ``SpectralDistillationConfig``)."""

    layer_selection: str = "topk"
    num_aligned_layers: int | None = None
    teacher_layers: list | None = None
    student_layers: list | None = None
    include_embeddings: bool = False
    beta: float = 1.0

    @classmethod
    def from_config(cls, config) -> LayerSelection:
        """From a ``SpectralDistillationConfig`` (or any object with these attributes), or from a recipe (its
        ``distillation`` section with the config's defaults, read through ``recipe.distillation_value``)."""
        read = getattr(config, "distillation_value", None) or (lambda name: getattr(config, name))
        return cls(**{f.name: read(f.name) for f in fields(cls)})

    def as_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- counts
def selects_layers(selection: LayerSelection) -> bool:
    """Whether the teacher layers are chosen from the teacher's intensity profile (an alignment term, no
    ``teacher_layers`` given, no manual choice): the case that needs the teacher's spectral analysis."""
    return selection.teacher_layers is None and selection.beta > 0 and selection.layer_selection != "manual"


def aligned_count(selection: LayerSelection, student_depth: int | None) -> int | None:
    """How many layer pairs are aligned; None when that is the student's depth and it is not known (yet)."""
    if selection.student_layers is not None:
        return len(selection.student_layers)
    if selection.teacher_layers is not None:
        return len(selection.teacher_layers)
    if selection.num_aligned_layers is None and selection.layer_selection == "last":
        return 1  # last-layer-only alignment
    return selection.num_aligned_layers or student_depth


def candidate_count(selection: LayerSelection, teacher_depth: int) -> int:
    """How many teacher layers automatic selection chooses from: the blocks, plus the embeddings if included."""
    return teacher_depth + (1 if selection.include_embeddings else 0)


def check_layer_arguments(selection: LayerSelection, student_depth: int, teacher_depth: int) -> None:
    """Raise ``ValueError`` when the selection does not fit a student of ``student_depth`` blocks and a teacher of
    ``teacher_depth`` blocks (indices out of range, lists of different lengths, more pairs than layers)."""
    s_n, t_n = student_depth, teacher_depth
    given = selection.student_layers
    if given is not None:
        check_layer_range("student_layers", given, 0, s_n, f"the student has {s_n} blocks")
    if given is not None:
        k = len(given)
    elif selection.num_aligned_layers is None and selection.layer_selection == "last":
        k = 1  # last-layer-only alignment (see aligned_count)
    else:
        k = selection.num_aligned_layers or s_n
    if selection.teacher_layers is not None:
        check_layer_range("teacher_layers", selection.teacher_layers, 0, t_n, f"the teacher has {t_n} blocks")
        if len(selection.teacher_layers) != k:
            aligned = "student_layers" if given is not None else f"the student blocks 1..{s_n}"
            raise ValueError(
                f"teacher_layers has {len(selection.teacher_layers)} entries but {k} student layers are aligned "
                f"({aligned}); give student_layers of the same length or change teacher_layers"
            )
    if selection.num_aligned_layers is not None and given is None and selection.num_aligned_layers > s_n:
        raise ValueError(f"num_aligned_layers={selection.num_aligned_layers} but the student has only {s_n} blocks")
    if selects_layers(selection) and k > candidate_count(selection, t_n):
        raise ValueError(
            f"cannot align {k} student layers with a teacher of {t_n} blocks; set num_aligned_layers <= {t_n}"
        )


# ---------------------------------------------------------------------------------------------- pairs
def aligned_student_layers(selection: LayerSelection, student_depth: int) -> list:
    """The aligned student layers: ``student_layers``, else the last ``k`` blocks (see :func:`aligned_count`)."""
    if selection.student_layers is not None:
        return list(selection.student_layers)
    k = aligned_count(selection, student_depth)
    return list(range(student_depth - k + 1, student_depth + 1))


def select_teacher_layers(selection: LayerSelection, intensity, k: int | None, entropy=None) -> list:
    """The ``k`` aligned teacher layers: ``teacher_layers`` as given; none without automatic selection (or with
    ``k`` unknown); else chosen from ``intensity`` (indexed like ``hidden_states``; ``entropy`` for the
    ``"entropy"`` rule) by ``layer_selection``."""
    if selection.teacher_layers is not None:
        return list(selection.teacher_layers)
    if not selects_layers(selection) or not k:
        return []
    return select_layers(intensity, k, strategy=selection.layer_selection,
                         include_embeddings=selection.include_embeddings, entropy=entropy)


def pair_layers(selection: LayerSelection, student_depth: int, teacher_depth: int, intensity=None,
                entropy=None) -> LayerMap:
    """The :class:`LayerMap` of ``selection`` for a student and a teacher of the given depths (blocks).

    ``intensity`` (the teacher's spectral intensity per ``hidden_states`` index; ``entropy``, its spectral entropy,
    for ``layer_selection="entropy"``) is needed only when :func:`selects_layers` is true; the map then records
    them as ``teacher_intensity`` / ``teacher_entropy``."""
    check_layer_arguments(selection, student_depth, teacher_depth)
    if selection.teacher_layers is not None:
        return LayerMap(list(selection.teacher_layers), aligned_student_layers(selection, student_depth), "manual")
    if not selects_layers(selection):
        return LayerMap([], [], "none")  # no alignment term: nothing to select
    if intensity is None:
        raise ValueError(f"layer_selection={selection.layer_selection!r} chooses the teacher layers from the "
                         "teacher's spectral intensity: pass its profile, or set teacher_layers")
    students = aligned_student_layers(selection, student_depth)
    teachers = select_teacher_layers(selection, intensity, len(students), entropy)
    return LayerMap(teachers, students, selection.layer_selection, [float(v) for v in intensity],
                    [float(v) for v in entropy] if entropy is not None else None)


# ---------------------------------------------------------------------------------------------- init layers
def _check_init_arguments(rule, num_layers, teacher_depth: int, intensity, selection) -> None:
    n = teacher_depth
    if num_layers is not None and (isinstance(num_layers, bool) or not isinstance(num_layers, int)
                                   or not 1 <= num_layers <= n):
        raise ValueError(
            f"num_layers must be a whole number in 1..{n} (the teacher has {n} blocks), got {num_layers!r}"
        )
    rules = INIT_RULES if selection is not None else SELECTION_STRATEGIES
    if isinstance(rule, str) and rule not in rules:
        raise ValueError(f"init_layers must be a list of teacher blocks or one of {', '.join(rules)}, got {rule!r}")
    if intensity is not None and len(intensity) != n + 1:
        raise ValueError(f"the profile has {len(intensity)} layers but the teacher returns {n + 1} hidden "
                         "states (embeddings + blocks): pass the profile of this teacher")


def choose_init_layers(rule, num_layers: int | None, teacher_depth: int, intensity=None,
                       selection: LayerSelection | None = None, entropy=None) -> list:
    """The teacher blocks (1-based) a ``num_layers``-block student built from the teacher copies, by ``rule``:

    * a list of teacher blocks (checked: in ``1..teacher_depth``, distinct, ``num_layers`` long when given);
    * ``"uniform"``: evenly spaced, ending at the last block (``[2, 4, 6]`` of 6);
    * ``"last"``: the last ``num_layers`` blocks;
    * ``"topk"`` / ``"ends"``: ranked by the teacher's ``intensity`` (needed); ``"entropy"``: by its spectral
      ``entropy`` (needed);
    * ``"selected"`` (needs ``selection``): the teacher layers the distillation aligns, chosen for ``num_layers``
      pairs; when that gives another count (``teacher_layers`` of another length, no alignment term), the
      ``num_layers`` blocks ranked by ``layer_selection`` (``topk`` for a manual selection).
    """
    _check_init_arguments(rule, num_layers, teacher_depth, intensity, selection)
    if not isinstance(rule, str) or rule in ("uniform", "last"):
        flat = [0.0] * (teacher_depth + 1)  # the rule reads no intensity
        return select_layers(flat, num_layers, strategy=list(rule) if not isinstance(rule, str) else rule)
    if intensity is None:
        raise ValueError(f"init_layers={rule!r} ranks the teacher's blocks by spectral intensity: pass the "
                         "teacher's profile")
    if rule != "selected":
        return select_layers(intensity, num_layers, strategy=rule, entropy=entropy)
    chosen = select_teacher_layers(selection, intensity, num_layers, entropy)
    if len(chosen) == num_layers:
        return chosen
    strategy = "topk" if selection.layer_selection == "manual" else selection.layer_selection
    return select_layers(intensity, num_layers, strategy=strategy, entropy=entropy)
