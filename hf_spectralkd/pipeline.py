"""The recipe pipeline behind ``hf-spectralkd distill --config RECIPE``.

Stages (each prints one line saying what runs and where its outputs go):

1. ``teacher``   fine-tune ``teacher.base`` on the training split -> ``<out>/teacher/`` (+ ``fingerprint.json``),
                 or load the fine-tuned classifier ``teacher.model``;
2. ``analysis``  spectral analysis of the teacher on training data -> ``<out>/analysis/``
                 (``spectral_profile.json``, ``layer_intensity.png``);
3. ``student``   build the student (teacher layers copied / pretrained / fresh config) and distil it with
                 :class:`~hf_spectralkd.SpectralDistillationTrainer` -> ``<out>/student/`` (with ``teacher.cache``:
                 the teacher's outputs are read from ``<out>/teacher_cache/``, built once and fingerprinted);
4. ``evaluate``  accuracy and macro-F1 on ``evaluation.split`` -> ``<out>/evaluation/<role>.json``;
5. ``baseline``  (``evaluation.baseline``) the same student trained without distillation, same budget
                 -> ``<out>/baseline/``;
6. ``results``   ``<out>/results.json``, ``<out>/summary.md`` and a printed summary table.

A stage writes into ``<out>/.<stage>.tmp`` and is renamed into place with a ``stage_done.json`` marker only
when complete, so an interrupted run (Ctrl-C) keeps the finished stages and the next run resumes after
them. A marker records the fingerprint of the stage's inputs; a stage whose inputs changed runs again.
Everything modality-specific goes through the task registry (:mod:`hf_spectralkd.tasks`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import shutil
import time
from typing import Callable, Optional

from .metrics import compute_metrics
from .recipes import Recipe

__all__ = ["run_pipeline", "evaluate_model", "STAGE_MARKER", "FINGERPRINT_FILENAME", "RESULTS_FILENAME"]

STAGE_MARKER = "stage_done.json"
TEACHER_CACHE_DIRNAME = "teacher_cache"
FINGERPRINT_FILENAME = "fingerprint.json"
RESULTS_FILENAME = "results.json"
SUMMARY_FILENAME = "summary.md"


# ---------------------------------------------------------------------------------------------- helpers
def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def _data_fingerprint(recipe: Recipe) -> dict:
    section = dataclasses.asdict(recipe.data)
    files = {}
    for key in ("train_file", "validation_file", "test_file", "source"):
        path = section.get(key)
        if path and os.path.isfile(path):
            files[key] = _file_digest(path)
        elif path and os.path.isdir(path):
            files[key] = {
                name: _file_digest(os.path.join(path, name))
                for name in sorted(os.listdir(path))
                if os.path.isfile(os.path.join(path, name))
            }
    return {"data": section, "files": files}


def _write_json(path: str, payload) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=str)
    os.replace(tmp, path)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def stage_done(directory: str, fingerprint: str) -> Optional[dict]:
    """The stage marker of ``directory`` if it is complete for ``fingerprint``."""
    marker = _read_json(os.path.join(directory, STAGE_MARKER))
    if marker and marker.get("fingerprint") == fingerprint:
        return marker
    return None


class _StageDir:
    """Write a stage into ``<out>/.<name>.tmp`` and move it to ``<out>/<name>`` when it completes."""

    def __init__(self, out: str, name: str, fingerprint: str):
        self.final = os.path.join(out, name)
        self.tmp = os.path.join(out, f".{name}.tmp")
        self.name, self.fingerprint = name, fingerprint

    def __enter__(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.start = time.time()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)  # never leave a half-written stage behind
            return False
        self.seconds = time.time() - self.start
        _write_json(
            os.path.join(self.tmp, STAGE_MARKER),
            {"stage": self.name, "fingerprint": self.fingerprint, "seconds": round(self.seconds, 2),
             "finished": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        )
        if os.path.exists(self.final):
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        return False


def _versions() -> dict:
    import accelerate
    import datasets
    import torch
    import transformers

    from . import __version__

    versions = {"hf_spectralkd": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
                "accelerate": accelerate.__version__, "datasets": datasets.__version__}
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:
        pass
    return versions


# ---------------------------------------------------------------------------------------------- arguments
_COMMON_DEFAULTS = dict(
    report_to="none", save_strategy="no", logging_steps=50, per_device_eval_batch_size=128, dataloader_num_workers=0,
)


def _common_defaults() -> dict:
    """The pipeline's TrainingArguments defaults (a recipe's ``training:`` section overrides any of them)."""
    import torch

    # pinned memory only helps host->GPU copies; on a CPU-only machine torch warns at every DataLoader
    return dict(_COMMON_DEFAULTS, dataloader_pin_memory=torch.cuda.is_available())


def teacher_training_args(recipe: Recipe, output_dir: str, task):
    from transformers import TrainingArguments

    ft = recipe.teacher.finetune
    values = dict(_common_defaults(), eval_strategy="no")
    values.update(
        num_train_epochs=ft.epochs, learning_rate=ft.learning_rate, per_device_train_batch_size=ft.batch_size,
        weight_decay=ft.weight_decay, warmup_steps=ft.warmup_steps, max_steps=ft.max_steps,
        gradient_accumulation_steps=ft.gradient_accumulation_steps, seed=ft.seed,
    )
    if recipe.evaluation.batch_size:
        values["per_device_eval_batch_size"] = recipe.evaluation.batch_size
    values.update(ft.args)
    values.update(task.training_overrides(recipe))
    return TrainingArguments(output_dir=output_dir, **values)


def student_training_values(recipe: Recipe, task) -> dict:
    values = dict(_common_defaults(), eval_strategy="epoch", learning_rate=1e-4, num_train_epochs=2,
                  per_device_train_batch_size=32, seed=42)
    if recipe.evaluation.batch_size:
        values["per_device_eval_batch_size"] = recipe.evaluation.batch_size
    values.update(recipe.training)
    values.update(task.training_overrides(recipe))
    return values


def distillation_args(recipe: Recipe, output_dir: str, task):
    from .distillation_config import SpectralDistillationConfig

    return SpectralDistillationConfig(output_dir=output_dir, **student_training_values(recipe, task), **recipe.distillation)


def baseline_args(recipe: Recipe, output_dir: str, task):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=output_dir, **student_training_values(recipe, task))


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_model(model, dataset, collator, batch_size: int = 128, output_dir: Optional[str] = None, progress: bool = True,
                   trainer_class=None) -> dict:
    """Accuracy, macro-F1 and inference throughput of ``model`` on a prepared ``dataset``."""
    import tempfile

    from transformers import Trainer, TrainingArguments


    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=output_dir or scratch, per_device_eval_batch_size=batch_size, report_to="none",
            disable_tqdm=not progress, dataloader_num_workers=0, dataloader_pin_memory=_common_defaults()["dataloader_pin_memory"],
        )
        trainer = (trainer_class or Trainer)(model=model, args=args, data_collator=collator, compute_metrics=compute_metrics)
        result = trainer.predict(dataset, metric_key_prefix="eval")
    metrics = result.metrics
    return {
        "metrics": {"accuracy": float(metrics["eval_accuracy"]), "macro_f1": float(metrics["eval_macro_f1"])},
        "num_samples": len(dataset),
        "throughput_samples_per_s": float(metrics.get("eval_samples_per_second") or 0.0),
        "eval_runtime_s": float(metrics.get("eval_runtime") or 0.0),
    }


# ---------------------------------------------------------------------------------------------- pipeline
def _aligned_count(recipe: Recipe, student_layers_total: Optional[int]) -> Optional[int]:
    d = recipe.distillation
    if d.get("teacher_layers"):
        return len(d["teacher_layers"])
    if d.get("student_layers"):
        return len(d["student_layers"])
    if d.get("num_aligned_layers"):
        return d["num_aligned_layers"]
    return student_layers_total


def _student_depth(recipe: Recipe) -> Optional[int]:
    s = recipe.student
    if s.num_layers is not None:
        return s.num_layers
    if isinstance(s.init_layers, list):
        return len(s.init_layers)
    if s.init == "pretrained":
        try:
            from transformers import AutoConfig

            from .loading import resolve_model_reference

            config = AutoConfig.from_pretrained(resolve_model_reference(s.model, "student.model"))
            return getattr(config, "num_hidden_layers", None)
        except Exception:
            return None
    return None


def _model_section(task, model, source, path, evaluation) -> dict:
    return {"source": source, "path": path, **task.describe(model), "metrics": evaluation["metrics"],
            "throughput_samples_per_s": evaluation["throughput_samples_per_s"]}


def check_single_process() -> None:
    """The pipeline's stages write shared folders: refuse a multi-process launch before any work."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        raise ValueError(
            f"hf-spectralkd distill runs its stages in one process, but it was launched in {world} (WORLD_SIZE={world}). "
            "Run `hf-spectralkd distill --config ...` without accelerate launch / torchrun (the Trainer uses one GPU when "
            "there is one); for several GPUs, DeepSpeed or FSDP launch a script with SpectralDistillationTrainer: "
            "`accelerate launch --config_file recipes/accelerate/<config>.yaml your_script.py`"
        )


def check_depths(recipe: Recipe, teacher_depth: int, k_aligned: Optional[int]) -> None:
    """Student depth, copied blocks and aligned-layer count against the teacher's depth, naming the recipe key."""
    s, d = recipe.student, recipe.distillation
    if s.init == "teacher_layers":
        if s.num_layers is not None and s.num_layers > teacher_depth:
            raise ValueError(f"student.num_layers={s.num_layers} but the teacher has only {teacher_depth} blocks to copy "
                             f"from (student.init: teacher_layers): use at most {teacher_depth}")
        if isinstance(s.init_layers, list):
            bad = [i for i in s.init_layers if not 1 <= i <= teacher_depth]
            if bad:
                raise ValueError(f"student.init_layers {bad} out of range: the teacher's blocks are 1..{teacher_depth}")
    if d.get("teacher_layers"):
        bad = [i for i in d["teacher_layers"] if not 0 <= i <= teacher_depth]
        if bad:
            raise ValueError(f"distillation.teacher_layers {bad} out of range: valid hidden_states indices for this teacher "
                             f"are 0..{teacher_depth} (0 = embeddings)")
    elif k_aligned and d.get("beta", 0.2) != 0 and d.get("layer_selection", "topk") != "manual":
        candidates = teacher_depth + (1 if d.get("include_embeddings") else 0)
        if k_aligned > candidates:
            if d.get("num_aligned_layers"):
                what = f"distillation.num_aligned_layers={k_aligned}"
            elif s.num_layers is not None:
                what = f"student.num_layers={k_aligned}"
            else:
                what = f"the student's {k_aligned} layers"
            raise ValueError(f"{what}: cannot align {k_aligned} student layers with a teacher of {teacher_depth} blocks "
                             f"({candidates} candidate layers); set distillation.num_aligned_layers <= {candidates}")


def preflight(recipe: Recipe) -> dict:
    """Every check of ``recipe`` that can run before any work, in the order the stages need them: model references,
    depths and layer indices, data (files, columns, labels, splits), every TrainingArguments / SpectralKD value,
    ``student.peft``, the Hub settings. Writes nothing; raises ``ValueError`` naming the recipe key. Used by
    :func:`run_pipeline` and by ``hf-spectralkd distill --dry-run``."""
    from .loading import is_offline
    from .tasks import get_task

    check_single_process()
    task = get_task(recipe.task)
    out = os.path.abspath(recipe.output_dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"output.dir {recipe.output_dir!r} is an existing file, not a directory: set output.dir to a directory")

    # ---- every check before any work: model references, data, argument values
    teacher_what = "teacher.base" if recipe.teacher.base else "teacher.model"
    teacher_ref = task.resolve_reference(recipe.teacher.base or recipe.teacher.model, teacher_what)
    if recipe.student.init == "pretrained":
        task.resolve_reference(recipe.student.model, "student.model")
    task.check_references(recipe, teacher_ref)
    teacher_depth = task.reference_depth(recipe, teacher_ref)
    if teacher_depth is not None:
        check_depths(recipe, teacher_depth, _aligned_count(recipe, _student_depth(recipe)))
    data = task.load_data(recipe)
    label_names = data.label_names
    processor = task.load_processor(recipe, teacher_ref)
    probe_dir = os.path.join(out, ".args-check")
    try:  # the argument builders raise ValueError for a bad value and create nothing
        distillation_args(recipe, probe_dir, task)
        if recipe.evaluation.baseline:
            baseline_args(recipe, probe_dir, task)
    except ValueError as exc:
        hint = (" (this machine has no GPU for bf16/fp16: add the override training.bf16=false / training.fp16=false)"
                if "bf16" in str(exc) or "fp16" in str(exc) else "")
        raise ValueError(f"invalid setting in the recipe's distillation/training sections: {exc}{hint}") from exc
    if recipe.teacher.base:
        try:
            teacher_training_args(recipe, probe_dir, task)
        except ValueError as exc:
            raise ValueError(f"invalid setting in teacher.finetune: {exc}") from exc
    if recipe.student.peft:
        from .peft_students import lora_config

        lora_config(recipe.student.peft)  # a bad student.peft field fails here, before any work
    if recipe.teacher.cache:
        if recipe.task != "text-classification":
            raise ValueError(f"teacher.cache: the teacher cache needs fixed, tokenized inputs (text-classification); the "
                             f"{recipe.task} pipeline transforms its inputs on the fly. Set teacher.cache: false")
        d = recipe.distillation
        no_layers = d.get("layer_selection") == "manual" and not d.get("teacher_layers")
        if d.get("beta", 0.2) == 0 or no_layers:
            raise ValueError("teacher.cache stores the aligned layers' hidden states: it needs distillation.beta > 0 and "
                             "aligned layers. Set teacher.cache: false")
    if recipe.hub.push_to_hub and is_offline():
        raise ValueError(
            "hub.push_to_hub is set but the Hub is unreachable (HF_HUB_OFFLINE=1): run with hub.push_to_hub=false and "
            f"push later with `hf-spectralkd push --model-dir {out} --repo-id {recipe.hub.hub_model_id}` where the Hub is reachable"
        )
    return {"task": task, "out": out, "teacher_ref": teacher_ref, "data": data, "label_names": label_names,
            "processor": processor}


def run_pipeline(recipe: Recipe, log: Callable[[str], None] = print) -> dict:
    """Run every stage of ``recipe`` (resuming finished ones) and return the results dictionary."""
    import torch
    from transformers import set_seed

    from .analysis import PLOT_FILENAME, PROFILE_FILENAME, collect_profile, plot_layer_intensity, sample_indices
    from .distillation_trainer import LayerMap, SpectralDistillationTrainer
    from .spectral import SpectralProfile, select_layers

    started = time.time()
    checked = preflight(recipe)
    task, out, teacher_ref = checked["task"], checked["out"], checked["teacher_ref"]
    data, label_names, processor = checked["data"], checked["label_names"], checked["processor"]
    prepared = task.prepare_datasets(recipe, data, processor)
    collator = task.data_collator(processor)
    eval_split = recipe.evaluation.split
    eval_batch = recipe.evaluation.batch_size or student_training_values(recipe, task)["per_device_eval_batch_size"]

    os.makedirs(out, exist_ok=True)
    timings, reused = {}, []
    log(f"[hf-spectralkd] recipe {recipe.name!r}{' (smoke)' if recipe.smoke else ''}: task {recipe.task}, "
        f"{len(label_names)} labels, splits {data.info['splits']}; outputs in {out}")

    # ---- 1. teacher
    data_fp = _data_fingerprint(recipe)
    if recipe.teacher.base:
        teacher_inputs = {"base": recipe.teacher.base, "finetune": dataclasses.asdict(recipe.teacher.finetune),
                          "data": data_fp, "labels": label_names, "task": recipe.task, "smoke": recipe.smoke}
        teacher_fp = _hash(teacher_inputs)
        teacher_dir = os.path.join(out, "teacher")
        marker = stage_done(teacher_dir, teacher_fp)
        if marker:
            log(f"[1/6 teacher] reusing the fine-tuned teacher in {teacher_dir} (inputs unchanged)")
            timings["teacher_finetune"] = marker.get("seconds", 0.0)
            reused.append("teacher")
        else:
            ft = recipe.teacher.finetune
            log(f"[1/6 teacher] fine-tuning {recipe.teacher.base} on {len(prepared['train'])} training examples "
                f"({f'{ft.max_steps} steps' if ft.max_steps and ft.max_steps > 0 else f'{ft.epochs:g} epochs'}, "
                f"lr {ft.learning_rate:g}) -> {teacher_dir}")

            with _StageDir(out, "teacher", teacher_fp) as stage:
                set_seed(ft.seed)
                model = task.load_base(recipe, teacher_ref, label_names)
                args = teacher_training_args(recipe, os.path.join(stage.tmp, "_trainer"), task)
                trainer = task.trainer_class()(model=model, args=args, train_dataset=prepared["train"], data_collator=collator)
                trainer.train()
                task.save_model(model, stage.tmp)
                task.save_processor(processor, stage.tmp)
                shutil.rmtree(os.path.join(stage.tmp, "_trainer"), ignore_errors=True)
                _write_json(os.path.join(stage.tmp, FINGERPRINT_FILENAME), {"fingerprint": teacher_fp, "inputs": teacher_inputs})
                del trainer
            timings["teacher_finetune"] = round(stage.seconds, 2)
        teacher_path, teacher_source = teacher_dir, recipe.teacher.base
        teacher = task.load_classifier(recipe, teacher_dir, label_names, what="fine-tuned teacher")
    else:
        teacher_fp = _hash({"model": recipe.teacher.model, "labels": label_names})
        log(f"[1/6 teacher] using the fine-tuned classifier {recipe.teacher.model} (no fine-tuning)")
        teacher = task.load_classifier(recipe, teacher_ref, label_names, what="teacher.model")
        teacher_path, teacher_source = teacher_ref, recipe.teacher.model
        timings["teacher_finetune"] = 0.0
    teacher.eval()
    n_teacher = task.num_layers(teacher)
    k_aligned = _aligned_count(recipe, _student_depth(recipe))
    check_depths(recipe, n_teacher, k_aligned)

    # ---- 2. spectral analysis of the teacher on training data
    distill_cfg = recipe.distillation
    selection_samples = distill_cfg.get("selection_samples", 512)
    analysis_dir = os.path.join(out, "analysis")
    strategy = distill_cfg.get("layer_selection", "topk")
    include_embeddings = distill_cfg.get("include_embeddings", False)
    # the same seeded sample the trainer's own automatic selection would read
    selection_seed = student_training_values(recipe, task)["seed"]
    # the stage's graph highlights the selected layers, so the selection settings are inputs of the stage too
    selection_inputs = {key: distill_cfg.get(key) for key in ("layer_selection", "teacher_layers", "student_layers",
                                                              "num_aligned_layers", "include_embeddings", "beta")}
    # the profile depends on teacher and sample only: later stages depend on this, so a new strategy or beta does not
    # retrain the no-KD baseline; the stage marker adds the selection (its graph highlights the selected layers)
    profile_fp = _hash({"teacher": teacher_fp, "samples": selection_samples, "data": data_fp, "seed": selection_seed,
                        "sampling": "seeded-random"})
    analysis_fp = _hash({"profile": profile_fp, "selection": selection_inputs, "k": k_aligned})

    def _alignment_layers(profile, k):
        if distill_cfg.get("teacher_layers"):
            return list(distill_cfg["teacher_layers"])
        if distill_cfg.get("beta", 0.2) == 0 or strategy == "manual" or not k:
            return []
        return select_layers(profile.intensity, k, strategy=strategy, include_embeddings=include_embeddings)

    marker = stage_done(analysis_dir, analysis_fp)
    if marker:
        log(f"[2/6 analysis] reusing the teacher's spectral profile in {analysis_dir}")
        timings["analysis"] = marker.get("seconds", 0.0)
        reused.append("analysis")
    else:
        log(f"[2/6 analysis] spectral analysis of the teacher on {min(selection_samples, len(prepared['train']))} training "
            f"examples -> {analysis_dir}/{PROFILE_FILENAME}, {PLOT_FILENAME}")
        from torch.utils.data import DataLoader

        with _StageDir(out, "analysis", analysis_fp) as stage:
            subset = prepared["train"].select(sample_indices(len(prepared["train"]), selection_samples, selection_seed))
            loader = DataLoader(subset, batch_size=eval_batch, shuffle=False, collate_fn=collator)
            profile = collect_profile(teacher, loader, max_samples=selection_samples, progress=True,
                                      description="teacher spectral analysis")
            selected = _alignment_layers(profile, k_aligned)
            profile.metadata.update({"role": "teacher", "model": teacher_source, "selected_layers": selected,
                                     "strategy": strategy, "num_samples": profile.num_samples})
            profile.save(os.path.join(stage.tmp, PROFILE_FILENAME))
            plot_layer_intensity(profile, os.path.join(stage.tmp, PLOT_FILENAME), selected=selected,
                                 title=f"Teacher layer intensity (orange = selected by {strategy})")
        timings["analysis"] = round(stage.seconds, 2)
    profile = SpectralProfile.load(os.path.join(analysis_dir, PROFILE_FILENAME))
    intensity = [float(v) for v in profile.intensity]

    # ---- 3. student: build + distil
    def resolve_init_layers():
        s = recipe.student
        if s.init != "teacher_layers":
            return None
        if isinstance(s.init_layers, list):
            return list(s.init_layers)
        m = s.num_layers  # at most the teacher's depth: check_depths ran above
        if s.init_layers == "selected":
            chosen = _alignment_layers(profile, m)
            if len(chosen) == m:
                return chosen
            return select_layers(intensity, m, strategy="topk" if strategy == "manual" else strategy)
        return select_layers(intensity, m, strategy=s.init_layers)

    init_layers = resolve_init_layers()
    student_inputs = {"teacher": teacher_fp, "analysis": profile_fp, "student": dataclasses.asdict(recipe.student),
                      "init_layers": init_layers, "training": recipe.training, "smoke": recipe.smoke}

    def build_student():
        set_seed(student_training_values(recipe, task)["seed"])
        model = task.build_student(recipe, teacher, label_names, init_layers)
        if recipe.student.peft:  # LoRA student: adapters (+ classifier) train, the rest stays frozen
            from .peft_students import apply_peft

            model = apply_peft(model, recipe.student.peft)
        return model

    def save_student(trainer, directory):
        if recipe.student.peft:  # merged model in <dir>/, the PEFT adapter in <dir>/adapter/
            from .peft_students import save_peft_student

            save_peft_student(trainer, directory)
        else:
            trainer.save_model(directory)

    student_fp = _hash({**student_inputs, "distillation": distill_cfg,
                        **({"teacher_cache": True} if recipe.teacher.cache else {})})
    student_dir = os.path.join(out, "student")
    marker = stage_done(student_dir, student_fp)
    if marker:
        log(f"[3/6 student] reusing the distilled student in {student_dir}")
        timings["distill"] = marker.get("seconds", 0.0)
        reused.append("student")
    else:
        what = {"teacher_layers": f"{len(init_layers or [])} blocks copied from teacher layers {init_layers}",
                "pretrained": f"pretrained {recipe.student.model}", "config": "a fresh model from the config"}[recipe.student.init]
        log(f"[3/6 student] distilling the teacher into a student ({what}) with SpectralKD -> {student_dir}")
        with _StageDir(out, "student", student_fp) as stage:
            student = build_student()
            args = distillation_args(recipe, stage.tmp, task)
            train_dataset = prepared["train"]
            if recipe.teacher.cache:
                from .teacher_cache import add_example_ids

                train_dataset = add_example_ids(train_dataset)
            trainer = SpectralDistillationTrainer(
                model=student, args=args, teacher_model=teacher, train_dataset=train_dataset,
                eval_dataset=prepared["validation"], data_collator=collator,
                compute_metrics=compute_metrics,
            )
            if not distill_cfg.get("teacher_layers") and args.beta > 0 and args.layer_selection != "manual":
                # align the layers the analysis stage chose, from the same profile (no second analysis)
                student_layers = trainer._student_layers()
                trainer.layer_map = LayerMap(_alignment_layers(profile, len(student_layers)), student_layers, strategy, intensity)
                trainer.spectral_profile = profile
                trainer._probe_student(trainer.layer_map)
                trainer.layer_map.save(stage.tmp)
            if recipe.teacher.cache:
                from .teacher_cache import enable_teacher_cache

                cache_dir = os.path.join(out, TEACHER_CACHE_DIRNAME)
                cache = enable_teacher_cache(trainer, cache_dir)  # reused while teacher, inputs and layers are unchanged
                log(f"[3/6 student] teacher cache: {cache_dir} ({len(cache)} examples, {cache.disk_bytes() / 2**20:.1f} MiB); "
                    "training reads the teacher's outputs from it")
            trainer.train()
            save_student(trainer, stage.tmp)
            task.save_processor(processor, stage.tmp)
            for name in (PROFILE_FILENAME, PLOT_FILENAME):
                if not os.path.exists(os.path.join(stage.tmp, name)):
                    shutil.copy(os.path.join(analysis_dir, name), os.path.join(stage.tmp, name))
            _write_json(os.path.join(stage.tmp, "training_log.json"), trainer.state.log_history)
            del trainer
        timings["distill"] = round(stage.seconds, 2)
    layer_map = LayerMap.load(student_dir) if os.path.exists(os.path.join(student_dir, "layer_map.json")) else LayerMap([], [], "none")

    # ---- 4. evaluation of teacher and student
    eval_dir = os.path.join(out, "evaluation")
    os.makedirs(eval_dir, exist_ok=True)
    eval_seconds = 0.0

    def evaluate_role(role, model_fp, load):
        nonlocal eval_seconds
        path = os.path.join(eval_dir, f"{role}.json")
        fp = _hash({"model": model_fp, "split": eval_split, "n": len(prepared[eval_split])})
        cached = _read_json(path)
        if cached and cached.get("fingerprint") == fp:
            return cached
        model = load()
        start = time.time()
        result = evaluate_model(model, prepared[eval_split], collator, batch_size=eval_batch, trainer_class=task.trainer_class())
        eval_seconds += time.time() - start
        result["fingerprint"] = fp
        _write_json(path, result)
        return result

    log(f"[4/6 evaluate] teacher and student on the {eval_split} split ({len(prepared[eval_split])} examples) -> {eval_dir}")
    teacher_eval = evaluate_role("teacher", teacher_fp, lambda: teacher)
    student_model = task.load_classifier(recipe, student_dir, label_names, what="distilled student")
    student_eval = evaluate_role("student", student_fp, lambda: student_model)

    # ---- 5. baseline: same student, same budget, no distillation
    baseline_section = None
    if recipe.evaluation.baseline:
        baseline_fp = _hash({**student_inputs, "baseline": True})
        baseline_dir = os.path.join(out, "baseline")
        marker = stage_done(baseline_dir, baseline_fp)
        if marker:
            log(f"[5/6 baseline] reusing the no-KD baseline in {baseline_dir}")
            timings["baseline"] = marker.get("seconds", 0.0)
            reused.append("baseline")
        else:
            log(f"[5/6 baseline] training the same student without distillation (same budget) -> {baseline_dir}")
            with _StageDir(out, "baseline", baseline_fp) as stage:
                model = build_student()
                args = baseline_args(recipe, stage.tmp, task)
                trainer = task.trainer_class()(model=model, args=args, train_dataset=prepared["train"],
                                               eval_dataset=prepared["validation"], data_collator=collator,
                                               compute_metrics=compute_metrics)
                trainer.train()
                save_student(trainer, stage.tmp)
                task.save_processor(processor, stage.tmp)
                _write_json(os.path.join(stage.tmp, "training_log.json"), trainer.state.log_history)
                del trainer
            timings["baseline"] = round(stage.seconds, 2)
        baseline_model = task.load_classifier(recipe, baseline_dir, label_names, what="baseline student")
        baseline_eval = evaluate_role("baseline", baseline_fp, lambda: baseline_model)
        baseline_section = {**_model_section(task, baseline_model, recipe.student.model or teacher_source, baseline_dir, baseline_eval),
                            "init": recipe.student.init, "init_layers": init_layers}
    else:
        log("[5/6 baseline] skipped (evaluation.baseline: false)")
        timings["baseline"] = 0.0
    timings["evaluate"] = round(eval_seconds, 2)

    # ---- 6. results
    d_args = distillation_args(recipe, student_dir, task)
    training_values = student_training_values(recipe, task)
    results = {
        "recipe": recipe.path,
        "recipe_name": recipe.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "task": recipe.task,
        "eval_split": eval_split,
        "smoke": recipe.smoke,
        "dataset": {**data.info, "splits": {k: len(v) for k, v in prepared.items()}, "label_names": label_names},
        "teacher": _model_section(task, teacher, teacher_source, teacher_path, teacher_eval),
        "student": {**_model_section(task, student_model, recipe.student.model or teacher_source, student_dir, student_eval),
                    "init": recipe.student.init, "init_layers": init_layers},
        "baseline": baseline_section,
        "layer_map": {"teacher_layers": layer_map.teacher_layers, "student_layers": layer_map.student_layers,
                      "strategy": layer_map.strategy, "teacher_intensity": layer_map.teacher_intensity or intensity},
        "distillation": {k: getattr(d_args, k) for k in ("alpha", "temperature", "beta", "fft_axis", "freq_loss_variant",
                                                         "layer_selection", "selection_samples")},
        "training": {
            "learning_rate": d_args.learning_rate, "num_train_epochs": d_args.num_train_epochs, "max_steps": d_args.max_steps,
            "per_device_train_batch_size": d_args.per_device_train_batch_size, "seed": d_args.seed,
            "gradient_accumulation_steps": d_args.gradient_accumulation_steps,
            "teacher_finetune": dataclasses.asdict(recipe.teacher.finetune) if recipe.teacher.finetune else None,
            **{k: v for k, v in training_values.items() if k in recipe.training},
        },
        "timings_s": {**{k: timings.get(k, 0.0) for k in ("teacher_finetune", "analysis", "distill", "baseline", "evaluate")},
                      "total": round(time.time() - started, 2)},
        "reused_stages": reused,
        "versions": _versions(),
        "output_dir": out,
        "hub": dataclasses.asdict(recipe.hub),
    }
    _write_json(os.path.join(out, RESULTS_FILENAME), results)
    summary = summary_markdown(results)
    with open(os.path.join(out, SUMMARY_FILENAME), "w", encoding="utf-8") as handle:
        handle.write(summary)
    from .cards import write_model_card

    write_model_card(student_dir, results)
    log(f"[6/6 results] {os.path.join(out, RESULTS_FILENAME)}, {os.path.join(out, SUMMARY_FILENAME)}")
    log(summary)
    torch.set_grad_enabled(True)
    if recipe.hub.push_to_hub:
        # everything is saved by now: a failed push raises HubPushError (one line, how to retry), nothing is lost
        from .hub import push_student

        log(f"[hub] pushing {student_dir} to {recipe.hub.hub_model_id}" + (" (private)" if recipe.hub.private else ""))
        push_student(out, recipe.hub.hub_model_id, private=recipe.hub.private)
        log(f"[hub] pushed: https://huggingface.co/{recipe.hub.hub_model_id}")
    return results


def summary_markdown(results: dict) -> str:
    """The summary table (markdown) of a results dictionary."""

    def row(role, section):
        if not section:
            return None
        m = section["metrics"]
        params = section.get("num_parameters") or 0
        return (f"| {role} | {section.get('num_layers')} | {params / 1e6:.1f}M | {100 * m['accuracy']:.2f} | "
                f"{100 * m['macro_f1']:.2f} | {section.get('throughput_samples_per_s', 0):.0f} |")

    lines = [
        f"## {results['recipe_name']}: {results['dataset'].get('name')} ({results['eval_split']} split, "
        f"{results['dataset']['splits'].get(results['eval_split'])} examples){' [smoke run]' if results.get('smoke') else ''}",
        "",
        "| model | layers | parameters | accuracy % | macro-F1 % | samples/s |",
        "|---|---|---|---|---|---|",
    ]
    student_label = f"SpectralKD student (init {results['student']['init']} {results['student'].get('init_layers') or ''})".replace(" )", ")")
    for role, section in (("teacher", results["teacher"]), ("no-KD student (baseline)", results.get("baseline")),
                          (student_label, results["student"])):
        line = row(role, section)
        if line:
            lines.append(line)
    lm = results["layer_map"]
    t = results["timings_s"]
    lines += [
        "",
        f"Aligned layers (teacher -> student): {lm['teacher_layers']} -> {lm['student_layers']} (strategy {lm['strategy']}).",
        "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items())
        + (f" (reused: {', '.join(results['reused_stages'])})" if results.get("reused_stages") else ""),
        "",
    ]
    return "\n".join(lines)
