"""Configuration of :class:`~hf_spectralkd.SpectralDistillationTrainer` (TRL style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from transformers import TrainingArguments

from .config_coercion import coerce_numeric_strings, parse_init_kwargs
from .feature_losses import ALIGNMENTS
from .numbers import check_training_arguments
from .spectral import FFT_AXES, LOSS_NORMALIZATIONS, LOSS_VARIANTS, SELECTION_STRATEGIES, check_loss_normalize

#: learned maps from the student's width to the teacher's before the mse / frequency term (TinyBERT's ``W_h``)
PROJECTIONS = ("none", "linear")

# upper bounds of the loss weights: beyond them float32 overflows (tau**2, beta * L_freq gradients)
MAX_TEMPERATURE = 1e3
MAX_BETA = 1e4


@dataclass
class SpectralDistillationConfig(TrainingArguments):
    r"""
    Configuration class for [`SpectralDistillationTrainer`]: every field of `transformers.TrainingArguments`,
    plus the SpectralKD fields below. The total loss is
    `(1-alpha)·CE + alpha·temperature²·KL(teacher‖student) + beta·L_freq`.

    Parameters:
        alpha (`float`, *optional*, defaults to `0.9`):
            Weight of the soft-logit KD term; `1 - alpha` weighs the cross-entropy on the labels. In [0, 1].
        temperature (`float`, *optional*, defaults to `1.0`):
            Softmax temperature of the KD term (> 0). The KD term is multiplied by `temperature²`.
        beta (`float`, *optional*, defaults to `0.2`):
            Weight of the alignment term (>= 0; 0 turns it off and skips the spectral analysis).
        alignment (`str`, *optional*, defaults to `"frequency"`):
            The alignment term of the aligned layer pairs: `frequency` (SpectralKD's frequency-domain MSE, logged as
            `freq_loss`), `mse` (token-space hidden-state MSE over the real tokens) or `attention` (MiniLM's
            attention-distribution + value-relation KL over `attention_relation_heads` relation heads; live teacher
            only). `mse` and `attention` are logged as `align_loss`.
        projection (`str`, *optional*, defaults to `"none"`):
            `linear`: a learned student→teacher width map per aligned pair (TinyBERT's `W_h`), trained with the
            student and not saved with it; `none` pools the wider hidden axis to the narrower. `mse` and
            `frequency` only.
        attention_relation_heads (`int`, *optional*):
            Relation heads of `alignment="attention"` (MiniLMv2): both sides' Q/K/V are split into this many heads,
            so head counts may differ. Default: the student's attention-head count (must divide both widths).
        alignment_phase (`float`, *optional*, defaults to `0.0`):
            Two-phase order (TinyBERT): the first `alignment_phase` fraction of the training steps trains the
            alignment term alone (`beta·L_align`), the rest the logit terms alone. `0` (default): one phase, the
            full loss at every step. Evaluation always reports the full loss.
        layer_selection (`str`, *optional*, defaults to `"topk"`):
            How teacher layers are chosen when `teacher_layers` is not given: `topk` (highest spectral intensity),
            `ends`, `uniform`, `entropy` (highest spectral entropy, norm-free), `last` (the last teacher blocks; one
            pair, last to last, unless `num_aligned_layers` says more), or `manual` (then `teacher_layers` is
            required).
        teacher_layers (`list[int]`, *optional*):
            Teacher layers to align, indexed like `hidden_states` (0 = embeddings, l = block l).
        student_layers (`list[int]`, *optional*):
            Student layers paired in order with the teacher layers. Defaults to every student block `1..m`.
        num_aligned_layers (`int`, *optional*):
            How many pairs to align when `student_layers` is not given (the last `k` student blocks are
            used). Defaults to the number of student blocks.
        include_embeddings (`bool`, *optional*, defaults to `False`):
            Let the automatic selection pick the teacher's embedding output (index 0).
        selection_samples (`int`, *optional*, defaults to `512`):
            Number of training examples the automatic spectral analysis reads before the first step (a random
            sample drawn with `seed`; iterable datasets: the first examples).
        fft_axis (`str`, *optional*, defaults to `"tokens"`):
            Axis of the alignment FFT: `tokens` (as the paper), `hidden`, or `tokens+hidden`.
        freq_loss_variant (`str`, *optional*, defaults to `"complex"`):
            `complex` (real and imaginary parts, as the paper) or `magnitude` (phase-free).
        freq_loss_normalize (`bool` or `str`, *optional*):
            Scale-free frequency term: `"teacher_energy"` (or `True`) divides each pair's loss by the teacher's
            spectral energy of that layer (mean `|F(teacher)|²` over the kept bins, detached), so `beta` means
            the same across models. `None`/`False` (default) keeps the raw loss.
        freq_bins (`int`, *optional*):
            Band-limited frequency term: keep only the first `freq_bins` bins of the one-sided `rfft` (lowest
            frequencies, DC first) along `fft_axis` (`tokens` or `hidden`; token models only). `None` (default)
            keeps every bin.
        gate_teacher_errors (`bool`, *optional*, defaults to `False`):
            On a labelled row whose teacher prediction (argmax) is not the label, drop the KD term and train that
            row on its label alone; rows without a label (transfer sets, label `-100`) always use the KD term.
        spectral_dynamics (`bool`, *optional*, defaults to `True`):
            Measure the student's spectral profile at each evaluation (distillation dynamics callback).
        dynamics_samples (`int`, *optional*, defaults to `64`):
            Size of the fixed, seeded evaluation sample the dynamics callback measures.
        teacher_model_name_or_path (`str`, *optional*):
            The teacher as a local directory or Hub id (as in TRL), used when the trainer gets no `teacher_model`.
        teacher_model_init_kwargs (`dict` or JSON `str`, *optional*):
            Keyword arguments of the teacher's `from_pretrained` when it is loaded from a path or Hub id, e.g.
            `{"dtype": "bfloat16", "revision": "main", "trust_remote_code": true}`.

    Numbers given as strings (YAML 1.1 reads `1e-4` as a string) are converted for every `float` / `int` field.
    """

    alpha: float = field(
        default=0.9, metadata={"help": "Weight of the soft-logit KD term, in [0, 1]; 1-alpha weighs CE."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Softmax temperature of the KD term (> 0)."})
    beta: float = field(default=0.2, metadata={"help": "Weight of the alignment term (>= 0; 0 = off)."})
    alignment: str = field(
        default="frequency",
        metadata={
            "help": "Alignment term of the layer pairs: frequency (SpectralKD), mse (hidden-state MSE) or attention "
            "(MiniLM attention + value-relation KL).",
            "choices": list(ALIGNMENTS),
        },
    )
    projection: str = field(
        default="none",
        metadata={
            "help": "linear: a learned student-to-teacher width map per pair (TinyBERT), not saved with the student; "
            "none: pool the wider hidden axis. mse / frequency only.",
            "choices": list(PROJECTIONS),
        },
    )
    attention_relation_heads: int | None = field(
        default=None,
        metadata={"help": "Relation heads of alignment=attention (default: the student's attention heads)."},
    )
    alignment_phase: float = field(
        default=0.0,
        metadata={"help": "Two-phase order: the first fraction of the steps trains beta*L_align alone, the rest the "
                          "logit terms alone (TinyBERT). 0 = one phase."},
    )
    layer_selection: str = field(
        default="topk",
        metadata={
            "help": "Teacher layer selection: topk, ends, uniform, entropy, last or manual.",
            "choices": [*SELECTION_STRATEGIES, "manual"],
        },
    )
    teacher_layers: list[int] | None = field(
        default=None, metadata={"help": "Teacher layers to align (hidden_states indices: 0 = embeddings)."}
    )
    student_layers: list[int] | None = field(
        default=None,
        metadata={"help": "Student layers paired in order with the teacher layers (default: all blocks)."},
    )
    num_aligned_layers: int | None = field(
        default=None,
        metadata={"help": "Number of layer pairs when student_layers is not given (default: all blocks)."},
    )
    include_embeddings: bool = field(
        default=False, metadata={"help": "Allow the automatic selection to pick the embedding output (index 0)."}
    )
    selection_samples: int = field(
        default=512,
        metadata={
            "help": "Training examples read by the automatic spectral analysis (a random sample drawn with `seed`)."
        },
    )
    fft_axis: str = field(
        default="tokens",
        metadata={"help": "Alignment FFT axis: tokens, hidden or tokens+hidden.", "choices": list(FFT_AXES)},
    )
    freq_loss_variant: str = field(
        default="complex",
        metadata={"help": "Alignment loss variant: complex or magnitude.", "choices": list(LOSS_VARIANTS)},
    )
    # typing.Union on purpose: HfArgumentParser cannot build an argument from `bool | str | None`
    freq_loss_normalize: Union[bool, str, None] = field(  # noqa: UP007
        default=None,
        metadata={
            "help": "Scale-free frequency term: 'teacher_energy' (or true) divides each pair's loss by the teacher's "
            "spectral energy of that layer (mean |F(teacher)|^2 over the kept bins, detached); None/false = off."
        },
    )
    freq_bins: int | None = field(
        default=None,
        metadata={
            "help": "Band-limited frequency term: keep only the first K rfft bins (lowest frequencies) along "
            "fft_axis (tokens or hidden; token models only). None = every bin."
        },
    )
    gate_teacher_errors: bool = field(
        default=False,
        metadata={
            "help": "On a labelled row whose teacher prediction is wrong, drop the KD term and train on the label "
            "alone (alpha=0 for that row), so a weak teacher cannot override the labels it gets wrong."
        },
    )
    spectral_dynamics: bool = field(
        default=True, metadata={"help": "Measure the student's spectral profile at each evaluation."}
    )
    dynamics_samples: int = field(
        default=64,  # 128 cost 5.0 % of a short run, 64 cost 3.2 % (benchmarks/dynamics_cost.py)
        metadata={"help": "Examples of the fixed evaluation sample used by the dynamics callback."},
    )
    teacher_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "The teacher (local directory or Hub id) when the trainer gets no teacher_model."},
    )
    teacher_model_init_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments (dict or JSON string) of the teacher's from_pretrained, e.g. "
                          '{"dtype": "bfloat16", "revision": "main", "trust_remote_code": true}.'},
    )

    def __post_init__(self):
        coerce_numeric_strings(self)  # before TrainingArguments checks its own numbers
        # every float finite (temperature=inf trains a NaN model), sizes and learning rate in range
        check_training_arguments(self)
        self.teacher_model_init_kwargs = parse_init_kwargs(self.teacher_model_init_kwargs)
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        # bounded: tau**2 overflows past ~1e154 and a beta of 1e30 sends every gradient to inf (a run that "trains")
        if not 0.0 < self.temperature <= MAX_TEMPERATURE:
            raise ValueError(f"temperature must be in (0, {MAX_TEMPERATURE:g}], got {self.temperature}")
        if not 0.0 <= self.beta <= MAX_BETA:
            raise ValueError(f"beta must be in [0, {MAX_BETA:g}], got {self.beta}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {self.alignment!r}")
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {self.projection!r}")
        if self.projection != "none" and self.alignment == "attention":
            raise ValueError("projection maps hidden states for alignment mse / frequency; alignment='attention' "
                             "compares L x L relations, which need none: set projection='none'")
        if self.attention_relation_heads is not None and (
            isinstance(self.attention_relation_heads, bool) or not isinstance(self.attention_relation_heads, int)
            or self.attention_relation_heads < 1
        ):
            raise ValueError(f"attention_relation_heads must be a positive integer or None, got "
                             f"{self.attention_relation_heads!r}")
        if not 0.0 <= self.alignment_phase < 1.0:
            raise ValueError(f"alignment_phase must be in [0, 1) (the fraction of the steps that trains the alignment "
                             f"term alone), got {self.alignment_phase}")
        if self.alignment_phase > 0 and self.beta == 0:
            raise ValueError("alignment_phase > 0 trains the alignment term alone first, but beta is 0 (no alignment "
                             "term): set beta > 0 or alignment_phase 0")
        if self.layer_selection not in (*SELECTION_STRATEGIES, "manual"):
            raise ValueError(
                f"layer_selection must be one of {', '.join(SELECTION_STRATEGIES)} or manual, "
                f"got {self.layer_selection!r}"
            )
        if self.layer_selection == "manual" and not self.teacher_layers:
            raise ValueError("layer_selection='manual' needs teacher_layers (a list of teacher hidden_states indices)")
        for name in ("teacher_layers", "student_layers"):
            layers = getattr(self, name)
            if layers is not None:
                if not layers or any((not isinstance(i, int)) or i < 0 for i in layers):
                    raise ValueError(f"{name} must be a non-empty list of non-negative layer indices, got {layers}")
                if len(set(layers)) != len(layers):
                    raise ValueError(f"{name} contains duplicate layers: {layers}")
        both = self.teacher_layers is not None and self.student_layers is not None
        if both and len(self.teacher_layers) != len(self.student_layers):
            raise ValueError(
                f"teacher_layers has {len(self.teacher_layers)} entries and student_layers has "
                f"{len(self.student_layers)}: they are paired one to one and must have the same length"
            )
        if self.num_aligned_layers is not None and self.num_aligned_layers < 1:
            raise ValueError(f"num_aligned_layers must be >= 1, got {self.num_aligned_layers}")
        if self.selection_samples < 1:
            raise ValueError(f"selection_samples must be >= 1, got {self.selection_samples}")
        if self.dynamics_samples < 1:
            raise ValueError(f"dynamics_samples must be >= 1, got {self.dynamics_samples}")
        if self.fft_axis not in FFT_AXES:
            raise ValueError(f"fft_axis must be one of {', '.join(FFT_AXES)}, got {self.fft_axis!r}")
        if self.freq_loss_variant not in LOSS_VARIANTS:
            raise ValueError(
                f"freq_loss_variant must be one of {', '.join(LOSS_VARIANTS)}, got {self.freq_loss_variant!r}"
            )
        try:
            self.freq_loss_normalize = check_loss_normalize(self.freq_loss_normalize)
        except ValueError:
            raise ValueError(
                f"freq_loss_normalize must be None/false, true or one of {', '.join(LOSS_NORMALIZATIONS)}, "
                f"got {self.freq_loss_normalize!r}"
            ) from None
        if self.freq_bins is not None:
            if isinstance(self.freq_bins, bool) or not isinstance(self.freq_bins, int) or self.freq_bins < 1:
                raise ValueError(f"freq_bins must be a positive integer or None, got {self.freq_bins!r}")
            if self.fft_axis == "tokens+hidden":
                raise ValueError(
                    "freq_bins needs fft_axis 'tokens' or 'hidden' (the band of a 2-D transform is not defined)"
                )
