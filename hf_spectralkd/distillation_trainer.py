"""SpectralKD as a drop-in ``transformers.Trainer``.

Total loss (DESIGN.md): ``(1-α)·CE + α·τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) + β·L_freq`` where ``L_freq`` is
the mean :func:`~hf_spectralkd.frequency_alignment_loss` over the aligned layer pairs. The teacher layers
are chosen once, before the first step, by spectral analysis of the teacher on training data.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.trainer_utils import get_last_checkpoint
from transformers.trainer import TRAINING_ARGS_NAME

from .adapters import get_adapter, unwrap_model
from .analysis import PLOT_FILENAME, PROFILE_FILENAME, collect_profile, plot_layer_intensity
from .analysis import sample_indices as analysis_sample_indices
from .distillation_config import SpectralDistillationConfig
from .distributed import prepare_teacher, preserve_rng_state
from .loading import load_classifier
from .spectral import frequency_alignment_loss, select_layers

__all__ = ["SpectralDistillationTrainer", "LayerMap", "LAYER_MAP_FILENAME"]

LAYER_MAP_FILENAME = "layer_map.json"


@dataclass
class LayerMap:
    """Which teacher layer each student layer is aligned with (``hidden_states`` indices)."""

    teacher_layers: list = field(default_factory=list)
    student_layers: list = field(default_factory=list)
    strategy: str = "topk"
    teacher_intensity: Optional[list] = None

    @property
    def pairs(self) -> list:
        return list(zip(self.student_layers, self.teacher_layers))

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, LAYER_MAP_FILENAME)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({**asdict(self), "pairs": self.pairs}, handle, indent=1)
        return path

    @classmethod
    def load(cls, directory: str) -> "LayerMap":
        with open(os.path.join(directory, LAYER_MAP_FILENAME), encoding="utf-8") as handle:
            data = json.load(handle)
        data.pop("pairs", None)
        return cls(**data)


def _is_default_labels(id2label: Optional[dict]) -> bool:
    return not id2label or all(str(v) == f"LABEL_{k}" for k, v in id2label.items())


class SpectralDistillationTrainer(Trainer):
    """``transformers.Trainer`` that distils ``teacher_model`` into ``model`` with SpectralKD.

    Args:
        model: the student (a model, or a local path / Hub id of a sequence classifier).
        args (`SpectralDistillationConfig`): training arguments plus the distillation fields.
        teacher_model: the fine-tuned teacher (a model, or a local path / Hub id). It is frozen, kept in eval
            mode, run under ``torch.no_grad()`` and placed by the accelerator in evaluation mode (sharded under
            DeepSpeed ZeRO-3 / FSDP, replicated otherwise, never wrapped in DDP).
        Everything else is passed to ``transformers.Trainer``.
    """

    _tag_names = ["hf_spectralkd", "distillation", "spectralkd"]
    _name = "SpectralKD"
    _paper = {
        "title": "SpectralKD: A Unified Framework for Interpreting and Distilling Vision Transformers via Spectral Analysis",
        "id": "2412.19055",
        "citation": (
            "@article{tian2024spectralkd,\n"
            "  title   = {{SpectralKD: A Unified Framework for Interpreting and Distilling Vision Transformers via Spectral Analysis}},\n"
            "  author  = {Tian, Huiyuan and Xu, Bonan and Li, Shijian and Pan, Gang},\n"
            "  journal = {arXiv preprint arXiv:2412.19055},\n"
            "  year    = {2024}\n"
            "}"
        ),
    }

    def __init__(self, model=None, args: Optional[SpectralDistillationConfig] = None, teacher_model=None, **kwargs):
        if args is None:
            args = SpectralDistillationConfig(output_dir="spectralkd-output")
        elif not isinstance(args, SpectralDistillationConfig):
            raise TypeError(
                f"args must be a SpectralDistillationConfig (got {type(args).__name__}); it takes every "
                "TrainingArguments field plus alpha, temperature, beta, layer_selection, ..."
            )
        if model is None:
            raise ValueError("SpectralDistillationTrainer needs a student `model` (a model or a path / Hub id)")
        if teacher_model is None:
            raise ValueError("SpectralDistillationTrainer needs a `teacher_model` (a fine-tuned model or a path / Hub id)")
        model = load_classifier(model, what="student model")
        teacher_model = load_classifier(teacher_model, what="teacher_model")
        self.student_adapter = get_adapter(model)
        self.teacher_adapter = get_adapter(teacher_model)
        self._check_compatible(model, teacher_model, args)
        self.teacher_adapter.match_student_inputs(teacher_model, model)  # e.g. re-normalise pixels (timm)
        self._check_input_columns(model, args)

        super().__init__(model=model, args=args, **kwargs)
        # compute_loss returns a per-batch mean: the Trainer must divide it by the accumulation steps itself
        # (transformers 5.x skips the division for models whose forward takes **kwargs).
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        if not self.label_names:  # compute_loss reads `labels`; models whose forward has no labels argument (timm)
            self.label_names = ["labels"]

        self.teacher = prepare_teacher(teacher_model, self.accelerator, self.is_deepspeed_enabled, self.is_fsdp_enabled)
        self.layer_map: Optional[LayerMap] = None
        self.spectral_profile = None
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        if hasattr(self.model, "add_model_tags"):
            self.model.add_model_tags(self._tag_names)
        if args.spectral_dynamics and kwargs.get("eval_dataset") is not None:
            from .dynamics import SpectralDynamicsCallback

            self.add_callback(SpectralDynamicsCallback(self))

    # ------------------------------------------------------------------ validation
    def _check_compatible(self, student, teacher, args):
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
            raise ValueError(f"teacher and student id2label differ ({detail}); build the student with the teacher's id2label")
        s_vocab, t_vocab = s_adapter.vocabulary(student), t_adapter.vocabulary(teacher)
        if s_vocab and t_vocab:
            for key in ("vocab_size", "pad_token_id"):
                if s_vocab.get(key) is not None and t_vocab.get(key) is not None and s_vocab[key] != t_vocab[key]:
                    raise ValueError(
                        f"teacher and student tokenizations are incompatible: {key} is {t_vocab[key]} for the teacher and "
                        f"{s_vocab[key]} for the student. The frequency alignment runs over the token axis and needs the "
                        "same tokenizer for both (pick a student of the teacher's family, e.g. distilroberta for roberta)"
                    )
        s_n, t_n = s_adapter.num_layers(student), t_adapter.num_layers(teacher)
        student_layers = args.student_layers
        if student_layers is not None:
            bad = [i for i in student_layers if not 0 <= i <= s_n]
            if bad:
                raise ValueError(f"student_layers {bad} out of range: the student has {s_n} blocks, valid indices are 0..{s_n}")
        if args.teacher_layers is not None:
            bad = [i for i in args.teacher_layers if not 0 <= i <= t_n]
            if bad:
                raise ValueError(f"teacher_layers {bad} out of range: the teacher has {t_n} blocks, valid indices are 0..{t_n}")
            k = len(student_layers) if student_layers is not None else (args.num_aligned_layers or s_n)
            if len(args.teacher_layers) != k:
                raise ValueError(
                    f"teacher_layers has {len(args.teacher_layers)} entries but {k} student layers are aligned "
                    f"({'student_layers' if student_layers is not None else 'the student blocks 1..' + str(s_n)}); give "
                    "student_layers of the same length or change teacher_layers"
                )
        if args.num_aligned_layers is not None and student_layers is None and args.num_aligned_layers > s_n:
            raise ValueError(f"num_aligned_layers={args.num_aligned_layers} but the student has only {s_n} blocks")
        if args.layer_selection != "manual" and args.teacher_layers is None and args.beta > 0:
            k = len(student_layers) if student_layers is not None else (args.num_aligned_layers or s_n)
            available = t_n + (1 if args.include_embeddings else 0)
            if k > available:
                raise ValueError(f"cannot align {k} student layers with a teacher of {t_n} blocks; set num_aligned_layers <= {t_n}")

    def _check_input_columns(self, model, args):
        """remove_unused_columns keeps only the columns named in forward(); a model fed by its adapter under
        other names (timm's forward(x) receives `pixel_values`) would lose its inputs."""
        names = self.student_adapter.input_names
        if not args.remove_unused_columns or not names:
            return
        base = unwrap_model(model)
        base = base.get_base_model() if hasattr(base, "peft_config") and hasattr(base, "get_base_model") else base
        accepted = set(inspect.signature(base.forward).parameters)
        if not accepted & set(names):
            raise ValueError(
                f"the student {type(base).__name__} takes {', '.join(names)} through its adapter but its forward() has "
                f"no such argument, so remove_unused_columns=True would drop them (and, with set_transform, the raw "
                "image column): set remove_unused_columns=False (and label_names=['labels']) in the config"
            )

    # ------------------------------------------------------------------ layer selection
    def _selection_dataloader(self):
        dataset = self.train_dataset
        if dataset is None:
            raise ValueError("automatic layer selection reads the training data: pass train_dataset, or set teacher_layers")
        n = self.args.selection_samples

        def sample_indices(size):
            # a seeded random sample: training files are often sorted by label (CLINC150 is)
            return analysis_sample_indices(size, n, self.args.seed)

        try:
            import datasets

            if isinstance(dataset, datasets.Dataset):
                dataset = dataset.select(sample_indices(len(dataset)))
                dataset = self._remove_unused_columns(dataset, description="spectral selection")
            elif isinstance(dataset, torch.utils.data.IterableDataset) or isinstance(dataset, datasets.IterableDataset):
                dataset = list(itertools.islice(iter(dataset), n))
            else:
                dataset = torch.utils.data.Subset(dataset, sample_indices(len(dataset)))
        except ImportError:  # pragma: no cover - datasets is a dependency
            dataset = torch.utils.data.Subset(dataset, sample_indices(len(dataset)))
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty: nothing to run the spectral layer selection on")
        return DataLoader(dataset, batch_size=self.args.per_device_eval_batch_size, shuffle=False, collate_fn=self.data_collator)

    def _student_layers(self) -> list:
        args = self.args
        n = self.student_adapter.num_layers(self.model)
        if args.student_layers is not None:
            return list(args.student_layers)
        k = len(args.teacher_layers) if args.teacher_layers is not None else (args.num_aligned_layers or n)
        return list(range(n - k + 1, n + 1))

    def setup_layer_map(self) -> LayerMap:
        """Choose the aligned layers (once). Runs the teacher's spectral analysis unless layers are given."""
        if self.layer_map is not None:
            return self.layer_map
        args = self.args
        student_layers = self._student_layers()
        profile = None
        if args.teacher_layers is not None:
            layer_map = LayerMap(list(args.teacher_layers), student_layers, "manual")
        elif args.beta == 0:
            layer_map = LayerMap([], [], "none")  # no alignment term: nothing to select
        else:
            with preserve_rng_state(self.accelerator.device):
                profile = collect_profile(
                    self.teacher, self._selection_dataloader(), adapter=self.teacher_adapter,
                    device=self.accelerator.device, max_samples=args.selection_samples,
                    progress=not args.disable_tqdm and self.is_world_process_zero(), description="spectral layer selection",
                )
            teacher_layers = select_layers(
                profile.intensity, len(student_layers), strategy=args.layer_selection, include_embeddings=args.include_embeddings
            )
            layer_map = LayerMap(teacher_layers, student_layers, args.layer_selection, [float(v) for v in profile.intensity])
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
        if profile is not None:
            profile.metadata.update({"selected_layers": layer_map.teacher_layers, "strategy": layer_map.strategy, "role": "teacher"})
        if self.args.should_save:
            os.makedirs(args.output_dir, exist_ok=True)
            layer_map.save(args.output_dir)
            if profile is not None:
                profile.save(os.path.join(args.output_dir, PROFILE_FILENAME))
                plot_layer_intensity(profile, os.path.join(args.output_dir, PLOT_FILENAME), selected=layer_map.teacher_layers,
                                     title="Teacher layer intensity (orange = selected for alignment)")
        return layer_map

    @torch.no_grad()
    def _probe_student(self, layer_map: LayerMap):
        """One forward of the student before any step: it must return hidden states for the aligned layers."""
        if self.train_dataset is None:
            return
        batch = next(iter(self._selection_dataloader()))
        batch = {k: (v[:2].to(self.accelerator.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        model = unwrap_model(self.model)
        was_training = model.training
        model.eval()
        try:
            out = self.student_adapter.forward(model, batch, output_hidden_states=True)
        finally:
            model.train(was_training)
        n = len(out.hidden_states)
        bad = [i for i in layer_map.student_layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"student_layers {bad} out of range: the student returns {n} hidden states, valid indices 0..{n - 1}")

    # ------------------------------------------------------------------ training
    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        if resume_from_checkpoint:
            checkpoint = resume_from_checkpoint
            if checkpoint is True:
                checkpoint = get_last_checkpoint(self.args.output_dir)
            if isinstance(checkpoint, str) and os.path.isfile(os.path.join(checkpoint, LAYER_MAP_FILENAME)):
                self.layer_map = LayerMap.load(checkpoint)  # restored, not re-selected
        self.setup_layer_map()
        return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        layer_map = self.setup_layer_map()
        args = self.args
        mode = "train" if model.training else "eval"
        labels = inputs.get("labels")
        need_hidden = args.beta > 0 and bool(layer_map.teacher_layers)
        cache = getattr(self, "teacher_cache", None)  # set by hf_spectralkd.teacher_cache.enable_teacher_cache
        example_ids = inputs.get(cache.id_column) if cache is not None else None
        if example_ids is not None:  # the id column is the cache key, never a model input
            inputs = {k: v for k, v in inputs.items() if k != cache.id_column}
        student = self.student_adapter.forward(model, inputs, output_hidden_states=need_hidden)
        if example_ids is not None and model.training:
            teacher = cache.teacher_outputs({**inputs, cache.id_column: example_ids}, need_hidden)
        else:
            with torch.no_grad():
                teacher = self.teacher_adapter.forward(self.teacher, inputs, output_hidden_states=need_hidden)
        s_logits = student.logits.float()
        t_logits = teacher.logits.float()
        zero = s_logits.new_zeros(())

        ce_loss = F.cross_entropy(s_logits, labels) if labels is not None else zero
        tau = args.temperature
        kd_loss = (
            F.kl_div(F.log_softmax(s_logits / tau, dim=-1), F.log_softmax(t_logits / tau, dim=-1), reduction="batchmean", log_target=True)
            * tau**2
        )
        freq_loss = zero
        if need_hidden:
            mask = student.attention_mask
            pair_losses = [
                frequency_alignment_loss(
                    student.hidden_states[s], teacher.hidden_states[t], mask, fft_axis=args.fft_axis, variant=args.freq_loss_variant
                )
                for s, t in layer_map.pairs
            ]
            freq_loss = torch.stack(pair_losses).mean()
        loss = (1 - args.alpha) * ce_loss + args.alpha * kd_loss + args.beta * freq_loss

        metrics = self._metrics[mode]
        metrics["ce_loss"].append(ce_loss.detach())
        metrics["kd_loss"].append(kd_loss.detach())
        metrics["freq_loss"].append(freq_loss.detach())
        if return_outputs:
            return loss, SequenceClassifierOutput(logits=student.logits)
        return loss

    # ------------------------------------------------------------------ logging
    def _reduce_metrics(self, mode: str) -> dict:
        """Mean of each component since the last log, averaged over processes."""
        metrics = self._metrics[mode]
        if not metrics:
            return {}
        keys = sorted(metrics)
        local = torch.stack([torch.stack(metrics[k]).float().mean() for k in keys]).to(self.accelerator.device)
        if self.accelerator.num_processes > 1:
            local = self.accelerator.gather(local.unsqueeze(0)).mean(dim=0)
        metrics.clear()
        return {k: float(v) for k, v in zip(keys, local.tolist())}

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs and self._metrics["train"]:
            logs = {**logs, **self._reduce_metrics("train")}
        super().log(logs, start_time)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        self._metrics["eval"].clear()
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        for key, value in self._reduce_metrics("eval").items():
            output.metrics[f"{metric_key_prefix}_{key}"] = value
        return output

    # ------------------------------------------------------------------ saving
    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        # an adapter may save in its library's own format (timm: config.json + model.safetensors)
        if self.args.should_save and self.student_adapter.save_pretrained(model, output_dir, state_dict=state_dict):
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
            return
        super()._save(output_dir, state_dict)

    def save_model(self, output_dir: Optional[str] = None, _internal_call: bool = False):
        super().save_model(output_dir, _internal_call)
        if self.layer_map is not None and self.args.should_save:
            self.layer_map.save(output_dir or self.args.output_dir)

    # ------------------------------------------------------------------ Hub (hf_spectralkd/cards.py, hub.py)
    def create_model_card(self, language=None, license=None, tags=None, model_name=None, finetuned_from=None,
                          tasks=None, dataset_tags=None, dataset=None, dataset_args=None, **kwargs):
        """Write the SpectralKD model card (README.md + layer-intensity graph) to ``output_dir``; same arguments as
        ``Trainer.create_model_card``, so ``push_to_hub()`` uploads this card."""
        if not self.is_world_process_zero():
            return None
        from .cards import write_trainer_model_card

        return write_trainer_model_card(self, language=language, license=license, tags=tags, model_name=model_name,
                                        finetuned_from=finetuned_from, tasks=tasks, dataset_tags=dataset_tags,
                                        dataset=dataset, dataset_args=dataset_args)

    def push_to_hub(self, commit_message="End of training", blocking=True, token=None, revision=None, private=None, **kwargs):
        """``Trainer.push_to_hub`` with this card; a Hub failure raises one ``HubPushError`` saying how to retry."""
        from .hub import trainer_push_to_hub

        return trainer_push_to_hub(self, super().push_to_hub, commit_message=commit_message, blocking=blocking, token=token,
                                   revision=revision, private=private, **kwargs)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if self.args.hub_strategy != "end" and self.is_world_process_zero():
            self.create_model_card(model_name=(self.args.hub_model_id or os.path.basename(self.args.output_dir)).split("/")[-1])
        super()._push_from_checkpoint(checkpoint_folder)
