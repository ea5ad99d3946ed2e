"""SpectralKD as a drop-in ``transformers.Trainer``.

Total loss (docs/method.md): ``(1-α)·CE + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) + β·L_freq`` where ``L_freq`` is
the mean :func:`~hf_spectralkd.frequency_alignment_loss` over the aligned layer pairs. The teacher layers
are chosen once, before the first step, by spectral analysis of the teacher on training data.

Seams for subclasses: :meth:`SpectralDistillationTrainer.logit_kd_loss` (the KD term),
:meth:`~SpectralDistillationTrainer.alignment_loss` (the per-pair feature term: override it to distil with
another feature loss) and ``_teacher_outputs`` (cached or live teacher).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import os
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from . import paper
from .adapters import get_adapter, unwrap_model
from .adapters.base import capture_attention_projections
from .analysis import collect_profile, plot_layer_intensity
from .cards import write_trainer_model_card
from .collator import DistillationDataCollator, model_columns
from .constants import (
    EXAMPLE_ID_KEY,
    LAYER_MAP_FILENAME,
    PLOT_FILENAME,
    PROFILE_FILENAME,
    TRAINER_RESULTS_FILENAME,
)
from .distillation_config import SpectralDistillationConfig
from .distributed import prepare_teacher, preserve_rng_state
from .dynamics import SpectralDynamicsCallback
from .feature_losses import attention_transfer_loss, hidden_mse_loss
from .guards import NonFiniteLossError, check_finite_loss, check_label_ids, writing_to
from .hub import trainer_push_to_hub
from .layer_map import (
    LayerMap,
    LayerSelection,
    aligned_student_layers,
    check_layer_arguments,
    pair_layers,
    selects_layers,
)
from .peft_students import save_peft_base
from .sampling import IGNORE_INDEX, sample_dataset
from .selection_report import SelectionReportCallback, log_layer_selection
from .spectral import SpectralProfile, frequency_alignment_loss
from .teacher_cache import (
    DEFAULT_ID_COLUMN,
    TeacherCache,
    add_example_ids,
    check_cacheable_head,
    check_fixed_inputs,
    open_teacher_cache,
)
from .trainer_options import (
    apply_peft_config,
    check_student_trains,
    check_trainer_arguments,
    load_model,
    resolve_teacher,
)
from .utils import check_layer_range, write_json

__all__ = ["SpectralDistillationTrainer", "LayerMap", "LAYER_MAP_FILENAME", "IGNORE_INDEX"]


def _is_default_labels(id2label: dict | None) -> bool:
    return not id2label or all(str(v) == f"LABEL_{k}" for k, v in id2label.items())


class SpectralDistillationTrainer(Trainer):
    """``transformers.Trainer`` that distils ``teacher_model`` into ``model`` with SpectralKD.

    Args:
        model: the student (a model, or a local path / Hub id of a sequence classifier).
        args (`SpectralDistillationConfig`): training arguments plus the distillation fields.
        teacher_model: the fine-tuned teacher (a model, or a local path / Hub id). It is frozen, kept in eval
            mode, run under ``torch.no_grad()`` and placed by the accelerator in evaluation mode (sharded under
            DeepSpeed ZeRO-3 / FSDP, replicated otherwise, never wrapped in DDP). Keyword only.
        layer_map (`LayerMap`, *optional*): the aligned layers, used as given (no selection; the student is
            still probed once and ``layer_map.json`` is saved).
        teacher_profile (`SpectralProfile`, *optional*): the teacher's spectral profile, already measured:
            the aligned teacher layers are selected from it with ``args.layer_selection`` instead of running the
            analysis again; it is saved (with its plot) as automatic selection saves its own.
        teacher_cache (`str` or `TeacherCache`, *optional*): a teacher-cache directory. The trainer adds the
            example-id column to ``train_dataset``, builds the cache there (or reuses it while teacher,
            inputs and aligned layers are unchanged) after layer selection, before the first step, and reads
            the teacher's training-time outputs from it (evaluation keeps the live teacher). With ``beta == 0``
            (logit KD) it stores the teacher's logits only.
        teacher_cache_id_column (`str`, *optional*): the integer ``train_dataset`` column the teacher cache finds
            examples by (default: the column of a given ``TeacherCache``, else ``"example_id"``, added by the
            trainer when missing). A batch carries the ids as ``batch["example_id"]``, never as a model input.
        Everything else is passed to ``transformers.Trainer``.

    The data collator (``data_collator``, or the one ``Trainer`` picks) is wrapped in a
    :class:`~hf_spectralkd.collator.DistillationDataCollator`, the one place that handles the columns: with
    ``args.remove_unused_columns`` it keeps the student's ``forward()`` arguments, the label columns and ``kd_mask``
    and drops the rest (after any ``set_transform``), and it moves the example ids out of the model inputs. Trainer
    itself gets a copy of ``args`` with ``remove_unused_columns=False`` (the ``args`` passed in are unchanged).
    """

    _tag_names = list(paper.TAG_NAMES)
    _name = paper.METHOD_NAME
    _paper = paper.PAPER

    def __init__(
        self,
        model=None,
        args: SpectralDistillationConfig | None = None,
        *,
        teacher_model=None,
        layer_map: LayerMap | None = None,
        teacher_profile: SpectralProfile | None = None,
        teacher_cache: str | os.PathLike | TeacherCache | None = None,
        teacher_cache_id_column: str | None = None,
        peft_config=None,
        **kwargs,
    ):
        args = self._check_arguments(model, args, teacher_model, kwargs)
        self._peft_config, self._pending_model = peft_config, None
        # the teacher first: a student given by path or Hub id (often a base checkpoint whose config names no head,
        # or a masked-LM head) is loaded with the auto class of the teacher's head, with a fresh head as before
        teacher_model = resolve_teacher(teacher_model, args)
        self.teacher_adapter = get_adapter(teacher_model)
        # what the logits are and which positions count (refuses a head the trainer does not distil)
        self.teacher_head = self.teacher_adapter.head(teacher_model)
        self._student_auto_class = self.teacher_head.auto_class
        self._student_head_options = self._fresh_head_options(teacher_model, self.teacher_head)
        model_init = kwargs.get("model_init")
        if model_init is not None:
            # hyperparameter search: the first student is built now for the checks; Trainer.__init__ receives it
            # from call_model_init, and train(trial=...) builds a fresh one per trial
            self.model_init = model_init
            model = self._pending_model = self.call_model_init(seed=args)
        else:
            model = apply_peft_config(self._load_student(model), peft_config)
        check_student_trains(model, teacher_model)  # not the teacher, not frozen: before any work
        self.student_adapter = get_adapter(model)
        self.student_head = self.student_adapter.head(model)
        self._check_heads(model, teacher_model, args)
        self._check_compatible(model, teacher_model, args)
        self.relation_heads = self._check_alignment(model, teacher_model, args, teacher_cache)
        self._check_given_selection(teacher_model, layer_map, teacher_profile)
        self.teacher_adapter.match_student_inputs(teacher_model, model)  # e.g. re-normalise pixels (timm)
        self._check_input_columns(model, args)
        self.teacher_cache: TeacherCache | None = None
        self.teacher_cache_dir: str | None = None
        self.teacher_cache_id_column = self._id_column(teacher_cache, teacher_cache_id_column)
        if teacher_cache is not None:
            check_cacheable_head(teacher_model, self.teacher_adapter)  # before any work: LM / multiple choice
            kwargs["train_dataset"] = self._cache_train_dataset(teacher_cache, kwargs.get("train_dataset"))

        super().__init__(model=None if model_init is not None else model, args=self._trainer_args(args), **kwargs)
        # compute_loss returns a per-batch mean: the Trainer must divide it by the accumulation steps itself
        # (transformers 5.x skips the division for models whose forward takes **kwargs).
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        if not self.label_names:  # compute_loss reads the head's labels; models whose forward has none (timm)
            self.label_names = list(self.student_head.label_names)
        # the one place the columns are handled: the unused ones dropped (args.remove_unused_columns), the ids apart
        keep = model_columns(model, self.label_names) if args.remove_unused_columns else None
        self.data_collator = DistillationDataCollator(self.data_collator, keep, self.teacher_cache_id_column)

        self.teacher = prepare_teacher(
            teacher_model, self.accelerator, self.is_deepspeed_enabled, self.is_fsdp_enabled
        )
        self.layer_map: LayerMap | None = None
        #: the learned student->teacher width maps of projection="linear" (one per aligned pair; built with the layer
        #: map, trained by the optimizer with the student, never saved with it)
        self.projections: torch.nn.ModuleList | None = None
        self._qkv_modules: dict = {}  # (model id, layer) -> (q, k, v) modules, for alignment="attention"
        self.spectral_profile = None
        self._given_layer_map, self._given_profile = layer_map, teacher_profile
        self._label_order_checked = False
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._metric_weights = {"train": defaultdict(list), "eval": defaultdict(list)}
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names)
        if args.spectral_dynamics and kwargs.get("eval_dataset") is not None:
            self.add_callback(SpectralDynamicsCallback(self))
        self.add_callback(SelectionReportCallback(self))  # after TensorBoardCallback: its writer is open by then

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_arguments(model, args, teacher_model, kwargs) -> SpectralDistillationConfig:
        if args is None:
            args = SpectralDistillationConfig(output_dir="spectralkd-output")
        elif not isinstance(args, SpectralDistillationConfig):
            raise TypeError(
                f"args must be a SpectralDistillationConfig (got {type(args).__name__}); it takes every "
                "TrainingArguments field plus alpha, temperature, beta, layer_selection, ..."
            )
        check_trainer_arguments(kwargs, args)
        launched = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if launched > 1 and args.world_size == 1:
            raise RuntimeError(
                f"{launched} processes were launched (WORLD_SIZE={launched}) but this one runs alone (its accelerator "
                f"sees 1 process): each would train a full, separate student into {args.output_dir}. On CPU, set "
                "use_cpu=True (--use_cpu) so the processes join one gloo group: torchrun --nproc_per_node 2 "
                "your_script.py --use_cpu ... (docs/scaling.md)"
            )
        if args.push_to_hub:
            from .hub import HubPushError
            from .loading import is_offline

            if is_offline():  # Trainer.__init__ would create the Hub repository and fail with a raw offline error
                raise HubPushError(
                    "push_to_hub=True needs the Hub, but offline mode is on (HF_HUB_OFFLINE=1): nothing was started. "
                    "Train with push_to_hub=False and upload later with `hf-spectralkd push --model-dir OUTPUT_DIR "
                    "--repo-id NAME`, or turn offline mode off"
                )
        if model is not None and kwargs.get("model_init") is not None:
            raise ValueError(
                "give the student as model= or model_init= (a function building it, for hyperparameter_search), "
                "not both"
            )
        if model is None and kwargs.get("model_init") is None:
            raise ValueError(
                "SpectralDistillationTrainer needs a student `model` (a model or a path / Hub id) or `model_init`"
            )
        if teacher_model is None and args.teacher_model_name_or_path is None:
            raise ValueError(
                "SpectralDistillationTrainer needs a `teacher_model` (a fine-tuned model or a path / Hub id), "
                "passed by keyword: teacher_model=..., or args.teacher_model_name_or_path"
            )
        return args

    def _check_heads(self, student, teacher, args):
        """Teacher and student have the same head, and the options fit it (before anything is built)."""
        s_head, t_head = self.student_head, self.teacher_head
        s_name = type(unwrap_model(student, peft=True)).__name__
        t_name = type(unwrap_model(teacher, peft=True)).__name__
        if s_head.name != t_head.name:
            raise ValueError(
                f"teacher and student have different heads: the teacher {t_name} is a {t_head.name} model, the "
                f"student {s_name} a {s_head.name} model; the KD term compares the same outputs of both"
            )
        if not s_head.softmax:
            for option, value, why in (
                ("label_smoothing_factor", args.label_smoothing_factor > 0, "smooths a softmax over classes"),
                ("gate_teacher_errors", args.gate_teacher_errors, "needs the teacher's class predictions"),
            ):
                if value:
                    raise ValueError(
                        f"{option} is set but the student {s_name} is a {s_head.name} model: {option} {why}, which "
                        f"this head does not have; unset it"
                    )

    def _check_compatible(self, student, teacher, args):
        self._check_labels(student, teacher)
        s_vocab, t_vocab = self.student_adapter.vocabulary(student), self.teacher_adapter.vocabulary(teacher)
        if s_vocab and t_vocab:
            for key in ("vocab_size", "pad_token_id"):
                if s_vocab.get(key) is not None and t_vocab.get(key) is not None and s_vocab[key] != t_vocab[key]:
                    why = (
                        "The KD term of a language-model head compares distributions over the vocabulary, so both "
                        "must share it" if key == "vocab_size" and self.student_head.name in ("causal-lm", "masked-lm")
                        else "The frequency alignment runs over the token axis and needs the same tokenizer for both"
                    )
                    raise ValueError(
                        f"teacher and student tokenizations are incompatible: {key} is {t_vocab[key]} for the "
                        f"teacher and {s_vocab[key]} for the student. {why} (pick a student of the teacher's "
                        "family, e.g. distilroberta for roberta)"
                    )
        self._check_layer_arguments(
            self.student_adapter.num_layers(student), self.teacher_adapter.num_layers(teacher), args
        )

    def _check_labels(self, student, teacher):
        s_adapter, t_adapter = self.student_adapter, self.teacher_adapter
        s_labels, t_labels = s_adapter.num_labels(student), t_adapter.num_labels(teacher)
        if s_labels is not None and t_labels is not None and s_labels != t_labels:
            raise ValueError(
                f"teacher and student have different num_labels (teacher {t_labels}, student {s_labels}); the KD term "
                "compares their logits class by class, so both must use the same label set"
            )
        s_map, t_map = s_adapter.id2label(student), t_adapter.id2label(teacher)
        if not _is_default_labels(s_map) and not _is_default_labels(t_map) and s_map != t_map:
            diff = sorted(i for i in set(s_map) | set(t_map) if s_map.get(i) != t_map.get(i))[:5]
            detail = ", ".join(f"{i}: teacher {t_map.get(i)!r} vs student {s_map.get(i)!r}" for i in diff)
            raise ValueError(
                f"teacher and student id2label differ ({detail}); build the student with the teacher's id2label"
            )

    def _check_alignment(self, student, teacher, args, teacher_cache) -> int | None:
        """The options of the alignment term fit the models (before any work); returns the relation-head count of
        ``alignment="attention"`` (None otherwise)."""
        if args.beta == 0:
            return None
        if args.projection != "none" and (self.is_deepspeed_enabled_in(args) or args.fsdp):
            raise ValueError("projection='linear' trains a width map outside the student, which DeepSpeed / FSDP do "
                             "not shard: use projection='none' with them")
        if args.alignment != "attention":
            return None
        if teacher_cache is not None:
            raise ValueError("alignment='attention' reads the teacher's query/key/value projections, which the "
                             "teacher cache does not store: train without teacher_cache (live teacher) or use "
                             "alignment 'mse' or 'frequency'")
        if args.gradient_checkpointing:
            raise ValueError("alignment='attention' records the query/key/value projections with forward hooks, which "
                             "gradient checkpointing re-runs without a graph: turn gradient_checkpointing off")
        s_n = self.student_adapter.num_layers(student)
        self.student_adapter.attention_projections(student, s_n)  # the adapter's message when it has none
        self.teacher_adapter.attention_projections(teacher, self.teacher_adapter.num_layers(teacher))
        heads = args.attention_relation_heads or self.student_adapter.attention_heads(student)
        if heads is None:
            raise ValueError("alignment='attention' splits Q/K/V into relation heads, but the student's config names "
                             "no attention-head count: set attention_relation_heads")
        for who, adapter, model in (("student", self.student_adapter, student), ("teacher", self.teacher_adapter,
                                                                                  teacher)):
            width = adapter.hidden_size(model)
            if width and width % heads:
                raise ValueError(
                    f"alignment='attention' splits Q/K/V into {heads} relation heads, which does not divide the "
                    f"{who}'s width {width}: set attention_relation_heads to a common divisor of both widths"
                )
        return heads

    @staticmethod
    def is_deepspeed_enabled_in(args) -> bool:
        return getattr(args, "deepspeed", None) is not None

    @staticmethod
    def _check_layer_arguments(s_n: int, t_n: int, args):
        check_layer_arguments(LayerSelection.from_config(args), s_n, t_n)  # the rule lives in layer_map.py

    def _check_given_selection(self, teacher, layer_map: LayerMap | None, profile: SpectralProfile | None):
        """A layer map or profile handed in must belong to this teacher: a profile of another model would select
        layers that do not exist or mean something else here."""
        t_n = self.teacher_adapter.num_layers(teacher)
        if layer_map is not None:
            check_layer_range(
                "layer_map.teacher_layers", layer_map.teacher_layers, 0, t_n, f"the teacher has {t_n} blocks"
            )
        if profile is not None and len(profile.intensity) != t_n + 1:
            raise ValueError(
                f"teacher_profile has {len(profile.intensity)} layers but the teacher returns {t_n + 1} hidden states "
                "(embeddings + blocks): pass the profile of this teacher"
            )

    def _check_input_columns(self, model, args):
        """remove_unused_columns keeps only the columns named in forward(); a model fed by its adapter under
        other names (timm's forward(x) receives `pixel_values`) would lose its inputs."""
        names = self.student_adapter.input_names
        if not args.remove_unused_columns or not names:
            return
        base = unwrap_model(model, peft=True)
        accepted = set(inspect.signature(base.forward).parameters)
        if not accepted & set(names):
            raise ValueError(
                f"the student {type(base).__name__} takes {', '.join(names)} through its adapter but its forward() "
                "has no such argument, so remove_unused_columns=True would drop them (and, with set_transform, the "
                "raw image column): set remove_unused_columns=False (and label_names=['labels']) in the config"
            )

    @staticmethod
    def _trainer_args(args):
        """The arguments ``Trainer`` gets: with ``remove_unused_columns`` a copy that has it off, since ``Trainer``
        would keep forward()'s arguments only; the trainer's :class:`DistillationDataCollator` removes the unused
        columns instead, keeping the label columns, ``kd_mask`` and the example ids."""
        if not args.remove_unused_columns:
            return args
        args = copy.copy(args)
        args.remove_unused_columns = False
        return args

    # ------------------------------------------------------------------ teacher cache
    @staticmethod
    def _id_column(teacher_cache, column: str | None) -> str:
        """The dataset column of the example ids: ``teacher_cache_id_column``, else a given cache's, else the
        default."""
        cached = teacher_cache.id_column if isinstance(teacher_cache, TeacherCache) else None
        if column is not None and cached is not None and column != cached:
            raise ValueError(
                f"teacher_cache_id_column={column!r}, but the teacher cache in {teacher_cache.directory} finds "
                f"examples by the column {cached!r}: pass the cache's column, or its directory to rebuild it"
            )
        return column or cached or DEFAULT_ID_COLUMN

    def _cache_train_dataset(self, teacher_cache, train_dataset):
        """Remember where the cache lives and return the training data with its example-id column."""
        self.teacher_cache_dir = (
            teacher_cache.directory if isinstance(teacher_cache, TeacherCache) else os.fspath(teacher_cache)
        )
        if train_dataset is None:
            raise ValueError("teacher_cache stores the teacher's outputs on the training data: pass train_dataset")
        if getattr(train_dataset, "format", {}).get("type") != "custom" and hasattr(train_dataset, "add_column"):
            train_dataset = add_example_ids(train_dataset, self.teacher_cache_id_column)
        check_fixed_inputs(train_dataset, self.teacher_cache_id_column)
        return train_dataset

    def use_teacher_cache(self, directory: str, id_column: str | None = None) -> None:
        """Read the teacher's training-time outputs from the cache in ``directory`` (built by
        :meth:`setup_teacher_cache`); ``train_dataset`` must already carry the integer ``id_column`` (default:
        ``teacher_cache_id_column``)."""
        id_column = id_column or self.teacher_cache_id_column
        check_fixed_inputs(self.train_dataset, id_column)
        self.teacher_cache_dir, self.teacher_cache = os.fspath(directory), None
        self.teacher_cache_id_column = id_column
        if isinstance(self.data_collator, DistillationDataCollator):
            self.data_collator.id_column = id_column

    def setup_teacher_cache(self, rebuild: bool = True, store_layers=None) -> TeacherCache | None:
        """Load the teacher cache, or (re)build it when its fingerprint (teacher weights, training inputs, aligned
        layers) does not match. Runs after layer selection; returns ``None`` when no cache was asked for. Without
        an alignment term (``beta == 0`` or no aligned layers) the cache stores the teacher's logits only.

        ``store_layers``: teacher layers to store besides the aligned ones (a cache holding more layers serves every
        run that aligns a subset of them: the pipeline's candidate students share one cache, the teacher runs once).
        """
        if self.teacher_cache is not None or self.teacher_cache_dir is None:
            return self.teacher_cache
        layer_map = self.setup_layer_map()
        # the layers compute_loss reads hidden states of: none for logit KD
        teacher_layers = list(layer_map.teacher_layers) if self.args.beta > 0 else []
        teacher_layers = sorted(set(teacher_layers) | set(store_layers or []))
        device = self.accelerator.device
        with self.accelerator.main_process_first(), preserve_rng_state(device):
            # the teacher pass iterates a DataLoader, which draws from the global RNG: keep the run's random numbers
            self.teacher_cache = open_teacher_cache(
                self.accelerator.unwrap_model(self.teacher),
                self.train_dataset,
                self.data_collator,
                teacher_layers,
                self.teacher_cache_dir,
                id_column=self.teacher_cache_id_column,
                rebuild=rebuild,
                batch_size=self.args.per_device_eval_batch_size,
                device=device,
                adapter=self.teacher_adapter,
            )
        return self.teacher_cache

    # ------------------------------------------------------------------ layer selection
    def _selection_dataloader(self):
        dataset = self.train_dataset
        if dataset is None:
            raise ValueError(
                "automatic layer selection reads the training data: pass train_dataset, or set teacher_layers"
            )
        # a seeded random sample: training files are often sorted by label (CLINC150 is)
        sample = sample_dataset(dataset, self.args.selection_samples, self.args.seed)
        if len(sample) == 0:
            raise ValueError("the training dataset is empty: nothing to run the spectral layer selection on")
        # the trainer's collator: the columns training sees (the adapters leave the example ids out of the forward)
        return DataLoader(
            sample,
            batch_size=self.args.per_device_eval_batch_size,
            shuffle=False,
            collate_fn=self.data_collator,
        )

    def student_layers(self) -> list:
        """The student ``hidden_states`` indices that are aligned: ``args.student_layers``, else the last ``k``
        blocks (``k`` = number of teacher layers, ``num_aligned_layers`` or all blocks; see layer_map.py)."""
        selection = LayerSelection.from_config(self.args)
        return aligned_student_layers(selection, self.student_adapter.num_layers(self.model))

    def setup_layer_map(self) -> LayerMap:
        """Choose the aligned layers (once). Runs the teacher's spectral analysis unless layers or a profile are
        given."""
        if self.layer_map is not None:
            return self.layer_map
        layer_map, profile = self._choose_layers()
        if layer_map.teacher_layers:
            with preserve_rng_state(self.accelerator.device):
                self._probe_student(layer_map)
        # every process must align the same layers: rank 0's choice is the one used everywhere
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            holder = [asdict(layer_map)]
            broadcast_object_list(holder, from_process=0)
            layer_map = LayerMap(**holder[0])
        self.layer_map = layer_map
        self.spectral_profile = profile
        if self.args.projection != "none" and self.args.beta > 0 and layer_map.pairs and self.projections is None:
            with preserve_rng_state(self.accelerator.device):
                self.projections = self._build_projections(layer_map)
        if not self._label_order_checked:
            with preserve_rng_state(self.accelerator.device):
                self._check_label_order()
            self._label_order_checked = True
        self._save_selection(layer_map, profile)
        if self.is_world_process_zero():
            log_layer_selection(layer_map)
        return layer_map

    def _check_label_ids(self) -> None:
        """Before any work: every label id of the training (and evaluation) data is a class of the head, or -100
        (a bare ``IndexError`` from the cross-entropy otherwise, after the layer selection ran)."""
        if self.teacher_head.name not in ("sequence-classification", "token-classification"):
            return  # a multiple-choice label indexes the choices, a language model's its vocabulary
        num_labels = self.teacher_adapter.num_labels(self.teacher)
        check_label_ids(self.train_dataset, num_labels, "train_dataset")
        evaluation = self.eval_dataset if isinstance(self.eval_dataset, dict) else {None: self.eval_dataset}
        for name, dataset in evaluation.items():
            check_label_ids(dataset, num_labels, "eval_dataset" if name is None else f"eval_dataset[{name!r}]")

    @torch.no_grad()
    def _check_label_order(self, max_units: int = 2048) -> None:
        """Stop when the training labels are the teacher's classes under another numbering (the user's own integer
        labels, a label map in another order): the teacher then agrees with the labels about as often as chance,
        yet almost always under one relabelling of the classes. Read on the layer-selection sample (labelled rows
        and, for token heads, labelled positions); a weak or untrained teacher agrees under no relabelling and
        passes."""
        head = self.teacher_head
        if head.name not in ("sequence-classification", "multiple-choice", "token-classification"):
            return
        if self.train_dataset is None or not hasattr(self.train_dataset, "__len__"):
            return
        try:
            loader = self._selection_dataloader()
        except ValueError:
            return
        predicted, labels = [], []
        device = self.accelerator.device
        for batch in loader:
            gold = batch.get("labels") if isinstance(batch, dict) else None
            if gold is None:
                return
            inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            out = self.teacher_adapter.forward(self.teacher, inputs, output_hidden_states=False, head=head)
            keep = gold != IGNORE_INDEX
            predicted.append(out.logits.argmax(-1).cpu()[keep])
            labels.append(gold[keep])
            if sum(len(x) for x in labels) >= max_units:
                break
        if not labels:
            return
        predicted, labels = torch.cat(predicted), torch.cat(labels)
        n = len(labels)
        num_classes = int(max(int(predicted.max()), int(labels.max())) + 1) if n else 0
        seen = int(labels.unique().numel())
        # too few units per class and the best renumbering of a noisy confusion matrix looks good by chance
        if num_classes < 2 or n < max(30, 3 * seen):
            return
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        confusion.index_put_((labels, predicted), torch.ones(n, dtype=torch.float64), accumulate=True)
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-confusion.numpy())
        # class-balanced rates (mean recall over the labels present): a dominant class (a token task's O, the same id
        # in both numberings) must not hide that every other class is renumbered
        support = confusion.sum(1)
        present = support > 0
        matched = torch.zeros(num_classes, dtype=torch.float64)
        matched[torch.as_tensor(rows)] = confusion[rows, cols]
        direct = float((confusion.diagonal()[present] / support[present]).mean())
        mapped = float((matched[present] / support[present]).mean())
        if mapped >= 0.5 and direct <= mapped / 3:
            id2label = self.teacher_adapter.id2label(self.teacher) or {}
            moved = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if r != c and confusion[r, c] > 0][:3]
            examples = "; ".join(
                f"rows labelled {r} are what the teacher calls {c} ({id2label.get(c, f'LABEL_{c}')!r})"
                for r, c in moved
            )
            raise ValueError(
                f"the training labels do not follow the teacher's id2label: on {n} sampled training "
                f"{'positions' if head.per_token else 'rows'} the teacher agrees with the labels {100 * direct:.0f} % "
                f"of the time (mean over classes) but {100 * mapped:.0f} % under a renumbering of the classes "
                f"({examples}). Encode the "
                "labels with the teacher's config.label2id (and build the student from the teacher, "
                "build_student(teacher, ...), so it shares the mapping)"
            )

    def _choose_layers(self) -> tuple:
        """``(layer_map, teacher profile or None)`` from, in order: a given layer map, ``args.teacher_layers``,
        ``beta == 0`` (nothing aligned), a given profile, the teacher's spectral analysis."""
        args = self.args
        profile = self._given_profile
        if self._given_layer_map is not None:
            return self._given_layer_map, profile
        selection = LayerSelection.from_config(args)
        if selects_layers(selection) and profile is None:
            with preserve_rng_state(self.accelerator.device):
                loader = self._selection_dataloader()
                profile = collect_profile(
                    self.teacher,
                    loader,
                    adapter=self.teacher_adapter,
                    device=self.accelerator.device,
                    # the sample actually drawn: a training set smaller than selection_samples ends the bar at 100 %
                    max_samples=min(args.selection_samples, len(loader.dataset)),
                    progress=not args.disable_tqdm and self.is_world_process_zero(),
                    description="teacher spectral layer selection",
                )
        s_n, t_n = self.student_adapter.num_layers(self.model), self.teacher_adapter.num_layers(self.teacher)
        intensity = profile.intensity if profile is not None else None
        entropy = profile.entropy if profile is not None else None
        return pair_layers(selection, s_n, t_n, intensity, entropy), profile

    def _save_selection(self, layer_map: LayerMap, profile: SpectralProfile | None):
        if profile is not None:
            # a copy: a profile handed in by the caller keeps its own metadata
            profile = dataclasses.replace(
                profile,
                metadata={
                    **profile.metadata,
                    "selected_layers": layer_map.teacher_layers,
                    "strategy": layer_map.strategy,
                    "role": "teacher",
                },
            )
            self.spectral_profile = profile
        if not self.args.should_save:
            return
        output_dir = self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        layer_map.save(output_dir)
        if profile is not None:
            profile.save(os.path.join(output_dir, PROFILE_FILENAME))
            plot_layer_intensity(
                profile,
                os.path.join(output_dir, PLOT_FILENAME),
                selected=layer_map.teacher_layers,
                title="Teacher layer intensity (orange = selected for alignment)",
            )

    @torch.no_grad()
    def _probe_forward(self) -> tuple:
        """``(batch, student output)``: two rows of the selection sample through the student in eval mode, with its
        hidden states (its training mode is restored)."""
        batch = next(iter(self._selection_dataloader()))
        device = self.accelerator.device
        batch = {k: (v[:2].to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        model = unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            return batch, self.student_adapter.forward(model, batch, output_hidden_states=True)
        finally:
            model.train(was_training)

    @torch.no_grad()
    def _build_projections(self, layer_map: LayerMap) -> torch.nn.ModuleList:
        """One ``Linear(D_student, D_teacher)`` per aligned pair (TinyBERT's ``W_h``), initialised from ``args.seed``
        (the run's random numbers are left as they were), float32, on the training device. The widths are read
        from one forward of both models on two selection rows."""
        batch, student = self._probe_forward()
        teacher = self.teacher_adapter.forward(self.teacher, batch, output_hidden_states=True, head=self.teacher_head)
        maps = []
        torch.manual_seed(self.args.seed)
        for s, t in layer_map.pairs:
            hs, ht = student.hidden_states[s], teacher.hidden_states[t]
            if hs.dim() != 3:
                raise ValueError("projection='linear' maps (N, L, D) token features; this student's aligned features "
                                 f"have shape {tuple(hs.shape)}: use projection='none'")
            maps.append(torch.nn.Linear(hs.shape[-1], ht.shape[-1]))
        return torch.nn.ModuleList(maps).to(self.accelerator.device)

    def create_optimizer(self, model=None):
        """``Trainer.create_optimizer``, plus the projections of ``projection="linear"`` as one more parameter group
        (the student's learning rate and weight decay)."""
        optimizer = super().create_optimizer(model)
        if self.projections is not None:
            params = list(self.projections.parameters())
            known = {id(p) for group in optimizer.param_groups for p in group["params"]}
            if not any(id(p) in known for p in params):
                optimizer.add_param_group({"params": params, "weight_decay": self.args.weight_decay})
        return optimizer

    @torch.no_grad()
    def _probe_student(self, layer_map: LayerMap):
        """One forward of the student before any step: it must return hidden states for the aligned layers."""
        if self.train_dataset is None:
            return
        _, out = self._probe_forward()
        n = len(out.hidden_states)
        check_layer_range(
            "student_layers", layer_map.student_layers, 0, n - 1, f"the student returns {n} hidden states"
        )

    # ------------------------------------------------------------------ training
    def call_model_init(self, trial=None, seed=None):
        """The student of ``model_init`` (called with the trial when it takes one), loaded and wrapped with
        ``peft_config`` as ``model=`` is. ``seed`` (the arguments whose seed to set first, as ``Trainer`` does right
        before each ``model_init`` call): every trial's student starts from the same seeded initialisation."""
        pending, self._pending_model = self._pending_model, None
        if pending is not None:
            return pending
        if seed is not None:
            from transformers.trainer_utils import enable_full_determinism, set_seed

            enable_full_determinism(seed.seed) if seed.full_determinism else set_seed(seed.seed)
        model = self._load_student(super().call_model_init(trial), what="the student model_init() returned")
        return apply_peft_config(model, self._peft_config)

    @staticmethod
    def _fresh_head_options(teacher, head) -> dict:
        """The teacher's label set, for a student head made fresh from a base checkpoint (classification heads)."""
        config = getattr(unwrap_model(teacher, peft=True), "config", None)
        if config is None or head.name in ("causal-lm", "masked-lm", "question-answering", "multiple-choice"):
            return {}
        options = {"num_labels": config.num_labels}
        if getattr(config, "id2label", None):
            id2label = dict(config.id2label)
            label2id = dict(config.label2id) if getattr(config, "label2id", None) else {
                name: int(index) for index, name in id2label.items()}
            options.update(id2label=id2label, label2id=label2id)
        if getattr(config, "problem_type", None):
            options["problem_type"] = config.problem_type
        return options

    def _load_student(self, reference, what: str = "student model"):
        """A student given by path or Hub id, with the auto class of the teacher's head. A checkpoint of that head
        loads as it is; any other (a base encoder, a masked-LM checkpoint) gets a fresh head with the teacher's
        label set."""
        if not isinstance(reference, (str, os.PathLike)):
            return reference
        from .adapters.hf import head_of_reference
        from .loading import resolve_model_reference

        location = resolve_model_reference(os.fspath(reference), what)
        named = head_of_reference(location, strict=True)
        same_head = named is not None and named.auto_class == self._student_auto_class
        options = {} if same_head else self._student_head_options
        return load_model(location, what=what, auto_class=self._student_auto_class, **options)

    def _new_trial(self, trial) -> None:
        """Before a ``model_init`` run: this trial's arguments first (Trainer sets them again, to the same values),
        then its student; the teacher's spectral profile is measured once and the layer pairs are derived again
        from it for the trial's settings (``beta``, ``layer_selection``, ...)."""
        self._hp_search_setup(trial)
        if self.spectral_profile is not None and self._given_profile is None:
            self._given_profile = self.spectral_profile
        self.layer_map, self.teacher_cache, self.projections, self._qkv_modules = None, None, None, {}
        self.model = self._pending_model = self.call_model_init(trial, seed=self.args)
        if self.student_adapter.head(self.model).name != self.student_head.name:  # refused here, not mid-step
            raise ValueError("model_init returned a student with another head than the first one it built")

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if self.model_init is not None and not resume_from_checkpoint:
            self._new_trial(trial)
        if resume_from_checkpoint:
            checkpoint = resume_from_checkpoint
            if checkpoint is True:
                checkpoint = get_last_checkpoint(self.args.output_dir)
            if isinstance(checkpoint, str) and os.path.isfile(os.path.join(checkpoint, LAYER_MAP_FILENAME)):
                self.layer_map = LayerMap.load(checkpoint)  # restored, not re-selected
        self._check_label_ids()
        self.setup_layer_map()
        self.setup_teacher_cache()
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    @staticmethod
    def logit_kd_loss(
        student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float, reduction: str = "batchmean"
    ) -> torch.Tensor:
        """``τ²·KL(softmax(t/τ) ‖ softmax(s/τ))`` summed over classes, in float32: averaged over the batch
        (``reduction="batchmean"``) or one value per row (``"none"``)."""
        tau = temperature
        student_log_probs = F.log_softmax(student_logits.float() / tau, dim=-1)
        teacher_log_probs = F.log_softmax(teacher_logits.float() / tau, dim=-1)
        per_row = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True).sum(-1) * tau**2
        return per_row if reduction == "none" else per_row.mean()

    def ce_loss(self, logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
        """Cross-entropy of each row of ``(U, C)`` logits (float32); rows labelled ``ignore_index`` (transfer-set rows
        without a label) give 0. ``args.label_smoothing_factor`` ε smooths it as Trainer's ``LabelSmoother``:
        ``(1-ε)·NLL + ε·mean_c(-log p_c)``. Token heads call it on their labelled positions."""
        return F.cross_entropy(
            logits.float(),
            labels,
            ignore_index=ignore_index,
            reduction="none",
            label_smoothing=float(self.args.label_smoothing_factor),
        )

    def _combine_logit_terms(self, s_logits, t_logits, inputs):
        """``(1-α)·CE + α·KD`` with CE over the labelled units and KD over the counted ones (docs/method.md,
        "Heads" and "Transfer sets"): units are rows or token positions, as the student's head says.

        Returns the combined term and the (ce, kd, labelled-unit count, counted-unit count) parts that are logged.
        With ``gate_teacher_errors`` a labelled unit whose teacher prediction is wrong is trained on its label
        alone."""
        args = self.args
        terms = self.student_head.terms(s_logits, t_logits, inputs, args.temperature, self.logit_kd_loss,
                                        self.ce_loss)
        kd_units, counted = terms.kd, terms.counted
        n_counted = int(counted.sum())
        kd_mean = (kd_units * counted).sum() / max(n_counted, 1)
        if terms.ce is None:
            return args.alpha * kd_mean, s_logits.new_zeros(()), kd_mean, 0, n_counted
        labelled = terms.labelled
        n_labelled = int(labelled.sum())
        alpha = torch.full_like(kd_units, args.alpha)
        if args.gate_teacher_errors and terms.wrong is not None:
            alpha = torch.where(terms.wrong, torch.zeros_like(alpha), alpha)
        # CE is a mean over labelled units, KD a mean over counted units: an unlabelled unit adds only α·KD
        ce_units = torch.where(labelled, terms.ce, torch.zeros_like(terms.ce))
        ce_weight = torch.where(labelled, 1 - alpha, torch.zeros_like(alpha)) / max(n_labelled, 1)
        kd_term = (torch.where(counted, alpha, torch.zeros_like(alpha)) * kd_units).sum() / max(n_counted, 1)
        combined = (ce_weight * ce_units).sum() + kd_term
        ce_mean = ce_units.sum() / max(n_labelled, 1)
        return combined, ce_mean, kd_mean, n_labelled, n_counted

    def alignment_loss(
        self, student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The feature term of one aligned (student, teacher) layer pair of hidden states; ``L_align`` is its mean
        over the pairs. ``args.alignment``: ``"frequency"`` (:func:`~hf_spectralkd.frequency_alignment_loss`) or
        ``"mse"`` (:func:`~hf_spectralkd.feature_losses.hidden_mse_loss`). Override it to distil with another feature
        loss. (``"attention"`` compares Q/K/V relations instead: :meth:`attention_alignment_loss`.)"""
        args = self.args
        if args.alignment == "mse":
            return hidden_mse_loss(student_hidden, teacher_hidden, attention_mask)
        return frequency_alignment_loss(
            student_hidden, teacher_hidden, attention_mask, fft_axis=args.fft_axis, variant=args.freq_loss_variant,
            bins=args.freq_bins, normalize=args.freq_loss_normalize,
        )

    def pair_alignment_loss(self, index: int, student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                            attention_mask: torch.Tensor | None) -> torch.Tensor:
        """:meth:`alignment_loss` of the ``index``-th aligned pair, after that pair's learned projection
        (``projection="linear"``) maps the student's hidden states to the teacher's width."""
        if self.projections is not None:
            student_hidden = self.projections[index](student_hidden.float())
        return self.alignment_loss(student_hidden, teacher_hidden, attention_mask)

    def _projection_modules(self, adapter, model, layers) -> dict:
        """``layer -> (q, k, v)`` modules of ``model``'s blocks ``layers`` for ``alignment="attention"``, found by the
        adapter once per model and layer (not on every step)."""
        found, key = self._qkv_modules, id(unwrap_model(model, peft=True))
        for layer in layers:
            if (key, layer) not in found:
                found[(key, layer)] = adapter.attention_projections(model, layer)
        return {layer: found[(key, layer)] for layer in layers}

    def attention_alignment_loss(self, student_qkv: tuple, teacher_qkv: tuple,
                                 attention_mask: torch.Tensor | None) -> torch.Tensor:
        """``alignment="attention"``'s term of one layer pair: MiniLM's attention-distribution KL plus value-relation
        KL over ``relation_heads`` heads (:func:`~hf_spectralkd.feature_losses.attention_transfer_loss`)."""
        return attention_transfer_loss(student_qkv, teacher_qkv, attention_mask, heads=self.relation_heads)

    @property
    def alignment_log_name(self) -> str:
        """The logged name of the alignment term: ``freq_loss`` for the frequency term, ``align_loss`` otherwise."""
        return "freq_loss" if self.args.alignment == "frequency" else "align_loss"

    def _phase(self, training: bool) -> str:
        """``"align"`` during the first ``alignment_phase`` of the training steps, ``"logits"`` after, ``"both"``
        without a two-phase order (and always in evaluation)."""
        ratio = self.args.alignment_phase
        if not training or ratio <= 0 or not self.state.max_steps:
            return "both"
        return "align" if self.state.global_step < ratio * self.state.max_steps else "logits"

    def _teacher_outputs(self, inputs: dict, need_hidden: bool):
        """The teacher's outputs for a batch: from the teacher cache while training on cached examples, else from
        the live teacher under ``no_grad`` (evaluation data is not in the cache). The batch's example ids (put there
        by the trainer's collator) are the cache's key; the adapter never passes them to the teacher."""
        if self.teacher_cache is not None and self.model.training and inputs.get(EXAMPLE_ID_KEY) is not None:
            return self.teacher_cache.teacher_outputs(inputs, need_hidden)
        with torch.no_grad():
            return self.teacher_adapter.forward(
                self.teacher, inputs, output_hidden_states=need_hidden, head=self.teacher_head
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        layer_map = self.setup_layer_map()
        args = self.args
        phase = self._phase(model.training)
        align = args.beta > 0 and bool(layer_map.teacher_layers) and phase != "logits"
        attention = align and args.alignment == "attention"
        need_hidden = align and not attention
        s_layers, t_layers = (layer_map.student_layers, layer_map.teacher_layers) if attention else ([], [])
        with (capture_attention_projections(self.student_adapter, model, s_layers,
                                            self._projection_modules(self.student_adapter, model, s_layers)) as s_qkv,
              capture_attention_projections(self.teacher_adapter, self.teacher, t_layers,
                                            self._projection_modules(self.teacher_adapter, self.teacher, t_layers))
              as t_qkv):
            student = self.student_adapter.forward(
                model, inputs, output_hidden_states=need_hidden, head=self.student_head
            )
            teacher = self._teacher_outputs(inputs, need_hidden)
        s_logits = student.logits.float()
        self.student_head.check(s_logits, inputs, type(unwrap_model(model, peft=True)).__name__)
        if tuple(teacher.logits.shape) != tuple(s_logits.shape):
            raise ValueError(
                f"teacher and student logits differ in shape (teacher {tuple(teacher.logits.shape)}, student "
                f"{tuple(s_logits.shape)}): both must see the same batch and predict the same label set"
            )
        logit_term, ce_loss, kd_loss, n_labelled, n_counted = self._combine_logit_terms(
            s_logits, teacher.logits.float(), inputs
        )
        align_loss = s_logits.new_zeros(())
        mask = student.attention_mask
        if attention:
            align_loss = torch.stack([
                self.attention_alignment_loss(s_qkv[s], t_qkv[t], mask) for s, t in layer_map.pairs
            ]).mean()
        elif need_hidden:
            pair_losses = [
                self.pair_alignment_loss(i, student.hidden_states[s], teacher.hidden_states[t], mask)
                for i, (s, t) in enumerate(layer_map.pairs)
            ]
            align_loss = torch.stack(pair_losses).mean()
        # two-phase order (alignment_phase): the alignment term alone, then the logit terms alone
        loss = args.beta * align_loss if phase == "align" else logit_term + args.beta * align_loss

        mode = "train" if model.training else "eval"
        self._record(mode, "ce_loss", ce_loss, weight=n_labelled)  # a batch without labels adds no CE sample
        self._record(mode, "kd_loss", kd_loss, weight=1.0 if n_counted else 0.0)  # a batch with no counted unit: none
        # a step of the logits-only phase computes no alignment term: it adds no sample to its mean
        self._record(mode, self.alignment_log_name, align_loss, weight=0.0 if phase == "logits" else 1.0)
        if return_outputs:
            # the student's own output object (TokenClassifierOutput, QuestionAnsweringModelOutput, ...) without
            # its hidden states, so predictions hold the logits only
            own = student.outputs
            return loss, (self.student_head.output(own) if own is not None
                          else SequenceClassifierOutput(logits=student.logits))
        return loss

    # ------------------------------------------------------------------ logging
    def _record(self, mode: str, name: str, value: torch.Tensor, weight: float = 1.0) -> None:
        """Keep one batch's value of a loss component and its weight (CE: the batch's labelled rows)."""
        self._metrics[mode][name].append(value.detach().float())
        self._metric_weights[mode][name].append(float(weight))

    def _reduce_metrics(self, mode: str) -> dict:
        """Weighted mean of each component since the last log, over batches and processes; a component with no
        weight in the window (CE when no batch had a labelled row) is left out rather than logged as 0."""
        metrics, weights = self._metrics[mode], self._metric_weights[mode]
        if not metrics:
            return {}
        keys = sorted(metrics)
        sums = []
        for key in keys:
            w = torch.tensor(weights[key], dtype=torch.float32, device=metrics[key][0].device)
            sums.append(torch.stack([(torch.stack(metrics[key]) * w).sum(), w.sum()]))
        local = torch.stack(sums).to(self.accelerator.device)
        if self.accelerator.num_processes > 1:
            local = self.accelerator.gather(local.unsqueeze(0)).sum(dim=0)
        metrics.clear()
        weights.clear()
        return {k: total / weight for k, (total, weight) in zip(keys, local.tolist(), strict=True) if weight > 0}

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.projections is not None and self.accelerator.num_processes > 1:
            # the projections live outside the DDP-wrapped student: average their gradients as DDP does the student's
            for param in self.projections.parameters():
                if param.grad is not None:
                    param.grad = self.accelerator.reduce(param.grad, reduction="mean")
        self._check_finite_loss(loss)
        return loss

    def _check_finite_loss(self, loss) -> None:
        """Stop at the first non-finite loss, naming the step and the term (no NaN student is ever saved)."""
        last = {name: values[-1] for name, values in self._metrics["train"].items() if values}
        check_finite_loss(loss, self.state.global_step, last)

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self._metrics["train"]:
            logs = {**logs, **self._reduce_metrics("train")}
        grad_norm = logs.get("grad_norm")
        if grad_norm is not None and not math.isfinite(float(grad_norm)) and not self.args.fp16:
            # fp16's grad scaler skips such steps itself; otherwise the weights are about to become NaN
            raise NonFiniteLossError(
                f"the gradient norm is {float(grad_norm)} at step {self.state.global_step} (loss {logs.get('loss')}): "
                "training stopped and no model was saved. Lower beta / the learning rate, or check the data"
            )
        super().log(logs, start_time)

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        self._metrics["eval"].clear()
        self._metric_weights["eval"].clear()
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        for key, value in self._reduce_metrics("eval").items():
            output.metrics[f"{metric_key_prefix}_{key}"] = value
        # the dynamics keys join this one entry under the same prefix (eval_dynamics/..., usable as
        # metric_for_best_model); predict() measures a sample of its own data (test_dynamics/...)
        for callback in self.callback_handler.callbacks:
            if isinstance(callback, SpectralDynamicsCallback):
                predicted = None if description == "Evaluation" else dataloader
                output.metrics.update(callback.evaluation_metrics(self.state, metric_key_prefix, predicted))
        return output

    # ------------------------------------------------------------------ saving
    def _save(self, output_dir: str | None = None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        # an adapter may save in its library's own format (timm: config.json + model.safetensors)
        if not self.student_adapter.save_trainer_model(self, output_dir, state_dict):
            super()._save(output_dir, state_dict)

    def _save_checkpoint(self, model, trial):
        # a full disk: an error naming the checkpoint (safetensors' and torch.save's own errors name no file); the
        # half-written checkpoint is removed (a resume reads the last complete one)
        folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        with writing_to(folder, f"the checkpoint of step {self.state.global_step}", remove_new=True):
            super()._save_checkpoint(model, trial)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        # a full disk: named, not a raw error (a checkpoint's own save is named by _save_checkpoint)
        with writing_to(output_dir or self.args.output_dir, "the model") if not _internal_call else nullcontext():
            super().save_model(output_dir, _internal_call)
            model = unwrap_model(self.model)
            if not _internal_call and self.args.should_save and hasattr(model, "peft_config"):
                # the adapter must reload onto the student, not onto the teacher its config was copied from
                save_peft_base(model, output_dir or self.args.output_dir)
            if self.layer_map is not None and self.args.should_save:
                self.layer_map.save(output_dir or self.args.output_dir)
            if not _internal_call and self.args.should_save:
                # what `hf-spectralkd push` / `card` build the model card from when this folder is pushed later
                from .results import results_from_trainer

                path = os.path.join(output_dir or self.args.output_dir, TRAINER_RESULTS_FILENAME)
                write_json(path, results_from_trainer(self).to_dict(), indent=1)

    # ------------------------------------------------------------------ Hub (hf_spectralkd/cards/, hub.py)
    def create_model_card(
        self,
        language=None,
        license=None,
        tags=None,
        model_name=None,
        finetuned_from=None,
        tasks=None,
        dataset_tags=None,
        dataset=None,
        dataset_args=None,
        **kwargs,
    ):
        """Write the SpectralKD model card (README.md + layer-intensity graph) to ``output_dir``; same arguments as
        ``Trainer.create_model_card``, so ``push_to_hub()`` uploads this card."""
        if not self.is_world_process_zero():
            return None
        return write_trainer_model_card(
            self,
            language=language,
            license=license,
            tags=tags,
            model_name=model_name,
            finetuned_from=finetuned_from,
            tasks=tasks,
            dataset_tags=dataset_tags,
            dataset=dataset,
            dataset_args=dataset_args,
        )

    def push_to_hub(
        self, commit_message="End of training", blocking=True, token=None, revision=None, private=None, **kwargs
    ):
        """``Trainer.push_to_hub`` with this card; a Hub failure raises one ``HubPushError`` saying how to retry."""
        return trainer_push_to_hub(
            self,
            super().push_to_hub,
            commit_message=commit_message,
            blocking=blocking,
            token=token,
            revision=revision,
            private=private,
            **kwargs,
        )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self.args.hub_strategy != "end" and self.is_world_process_zero():
            self.create_model_card(
                model_name=(self.args.hub_model_id or os.path.basename(self.args.output_dir)).split("/")[-1]
            )
        super()._push_from_checkpoint(checkpoint_folder)
