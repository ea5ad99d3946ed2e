"""Distillation dynamics: watch the student's layer-intensity curve converge to the teacher's.

The SpectralKD paper (Tian et al., arXiv 2412.19055) reports that distilled students reproduce their
teachers' spectral patterns, even in layers that were never aligned. :class:`SpectralDynamicsCallback`
measures this *while* training runs: at each evaluation it computes the student's spectral intensity per
layer (:func:`~hf_spectralkd.analysis.collect_profile`, so the numbers are those of the analysis functions)
on a fixed, seeded sample of the evaluation data, compares it with the teacher's curve on the same sample,
and logs the result through ``Trainer.log`` (so ``log_history``, TensorBoard, W&B ... get it).

Agreement between two intensity curves (one implementation, shared with ``hf-spectralkd compare``):

* ``aligned``: the student intensities at the aligned student layers vs the teacher intensities at their
  paired teacher layers (the layer map's pairs), in pair order;
* ``all``: both whole curves (``hidden_states`` indices ``0..n``, embeddings included) placed on a relative
  depth axis ``l / n`` in ``[0, 1]`` and linearly resampled to a common grid of ``max(n_teacher, n_student) + 1``
  evenly spaced points (the deeper curve is unchanged, the shallower one is interpolated);
* ``pearson``: Pearson correlation of the two vectors (shape agreement); NaN with fewer than
  :data:`MIN_PEARSON_POINTS` (4) points or a constant curve: a correlation over ``k`` points has ``k - 2`` degrees
  of freedom, so over 2 points it is +-1 whatever the curves, and over 3 points (1 degree of freedom) even
  |r| = 0.99 is not significant at the 5 % level; ``mre``: mean over points of ``|student - teacher| / |teacher|``
  (scale agreement; defined for any number of points, so the aligned pairs always have it).

Log keys carry the ``metric_key_prefix`` of the evaluation they join (``eval_dynamics/pearson_all`` in
``evaluate()``, ``test_dynamics/...`` in ``predict()``), so ``metric_for_best_model="dynamics/pearson_all"``
(the Trainer prepends ``eval_``) works.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from transformers import TrainerCallback

from .adapters import ModelAdapter, unwrap_model
from .analysis import collect_profile
from .constants import DYNAMICS_JSON_FILENAME, DYNAMICS_PLOT_FILENAME
from .distributed import preserve_rng_state
from .sampling import sample_dataset
from .utils import json_number, write_json

__all__ = [
    "LOG_PREFIX",
    "MIN_PEARSON_POINTS",
    "SpectralDynamicsCallback",
    "curve_agreement",
    "mean_relative_error",
    "pearson",
    "plot_intensity_curves",
    "resample_curve",
]

LOG_PREFIX = "dynamics/"  # after the evaluation's metric_key_prefix: eval_dynamics/..., test_dynamics/...
DEFAULT_PREFIX = "eval"  # measurements outside an evaluation (start / end of training) are of the eval sample
# a Pearson correlation over k points has k - 2 degrees of freedom: 2 points always give +-1, 3 points one degree
# of freedom (|r| must exceed 0.997 to be significant at 5 %); from 4 points on it says something about the shape
MIN_PEARSON_POINTS = 4
AGREEMENT_KEYS = ("pearson_aligned", "mre_aligned", "pearson_all", "mre_all")


# --------------------------------------------------------------------------------------------------
# Agreement between intensity curves (pure functions)
# --------------------------------------------------------------------------------------------------
def _vector(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("an intensity curve needs at least one value")
    return array


def resample_curve(values, num_points: int) -> np.ndarray:
    """Linear interpolation of a curve sampled at ``len(values)`` evenly spaced depths in ``[0, 1]`` onto
    ``num_points`` evenly spaced depths in ``[0, 1]`` (the end points are kept: ``[a, b, c, d] -> [a, d]``
    for 2 points)."""
    curve = _vector(values)
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    if curve.size == 1:
        return np.repeat(curve, num_points)
    if num_points == 1:
        return curve[-1:].copy()
    return np.interp(np.linspace(0.0, 1.0, num_points), np.linspace(0.0, 1.0, curve.size), curve)


def pearson(a, b) -> float:
    """Pearson correlation of two equally long vectors; NaN when undefined (< 2 points or a constant vector)."""
    x, y = _vector(a), _vector(b)
    if x.shape != y.shape:
        raise ValueError(f"pearson needs vectors of the same length, got {x.size} and {y.size}")
    if x.size < 2:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
    if denominator == 0.0:
        return math.nan
    return float((x * y).sum()) / denominator


def mean_relative_error(student, teacher) -> float:
    """``mean_i |student_i - teacher_i| / |teacher_i|`` (the teacher is the reference)."""
    s, t = _vector(student), _vector(teacher)
    if s.shape != t.shape:
        raise ValueError(f"mean_relative_error needs vectors of the same length, got {s.size} and {t.size}")
    if np.any(t == 0):
        return math.nan
    return float(np.mean(np.abs(s - t) / np.abs(t)))


def _pearson_if_meaningful(a, b) -> float:
    """:func:`pearson`, NaN below :data:`MIN_PEARSON_POINTS` points."""
    return pearson(a, b) if _vector(a).size >= MIN_PEARSON_POINTS else math.nan


def curve_agreement(teacher_intensity, student_intensity, pairs: Sequence = ()) -> dict:
    """``{"pearson_aligned", "mre_aligned", "pearson_all", "mre_all"}`` of a student curve against a teacher
    curve (both indexed like ``hidden_states``). ``pairs`` are ``(student_layer, teacher_layer)`` tuples as in
    :attr:`LayerMap.pairs`; without pairs the two ``aligned`` values are NaN. A Pearson value over fewer than
    :data:`MIN_PEARSON_POINTS` points (e.g. ``pearson_aligned`` with 2 or 3 pairs) is NaN: it would be +-1 by
    construction (2 points) or carry a single degree of freedom (3 points)."""
    teacher, student = _vector(teacher_intensity), _vector(student_intensity)
    pairs = [(int(s), int(t)) for s, t in pairs]
    bad = [(s, t) for s, t in pairs if not (0 <= s < student.size and 0 <= t < teacher.size)]
    if bad:
        raise ValueError(
            f"layer pairs {bad} are out of range: the student curve has indices 0..{student.size - 1}, "
            f"the teacher curve 0..{teacher.size - 1}"
        )
    result = {key: math.nan for key in AGREEMENT_KEYS}
    if pairs:
        aligned_s = student[[s for s, _ in pairs]]
        aligned_t = teacher[[t for _, t in pairs]]
        result["pearson_aligned"] = _pearson_if_meaningful(aligned_s, aligned_t)
        result["mre_aligned"] = mean_relative_error(aligned_s, aligned_t)
    grid = max(teacher.size, student.size)
    s_all, t_all = resample_curve(student, grid), resample_curve(teacher, grid)
    result["pearson_all"] = _pearson_if_meaningful(s_all, t_all)
    result["mre_all"] = mean_relative_error(s_all, t_all)
    return result


# --------------------------------------------------------------------------------------------------
# Plot (shared by the callback report and `hf-spectralkd compare`)
# --------------------------------------------------------------------------------------------------
def plot_intensity_curves(
    path: str,
    teacher_intensity,
    student_curves: Sequence,
    pairs: Sequence = (),
    history: Sequence[dict] | None = None,
    title: str | None = None,
    teacher_label: str = "teacher",
) -> str:
    """Teacher curve vs one or more student curves on a relative-depth axis (``l / n``; 0 = embeddings,
    1 = last block); aligned layers are ringed. With ``history`` (dicts with ``step`` and the agreement
    keys) a second panel shows the agreement over training steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teacher = _vector(teacher_intensity)
    panels = 2 if history else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.2), squeeze=False)
    _plot_curves(axes[0][0], plt.get_cmap("viridis"), teacher, student_curves, pairs, title, teacher_label)
    if history:
        _plot_history(axes[0][1], history)
    # fixed margins: tight_layout() measures every text box with an extra draw (about half the plot's cost)
    if panels == 2:
        fig.subplots_adjust(left=0.06, right=0.94, bottom=0.12, top=0.92, wspace=0.32)
    else:
        fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_curves(ax, cmap, teacher, student_curves, pairs, title, teacher_label) -> None:
    """The intensity panel: the teacher curve, the student curves, the aligned layers ringed."""
    t_depth = np.linspace(0.0, 1.0, teacher.size) if teacher.size > 1 else np.zeros(1)
    ax.plot(
        t_depth,
        teacher,
        color="black",
        linewidth=2.2,
        marker="o",
        markersize=4,
        label=f"{teacher_label} ({teacher.size - 1} blocks)",
    )
    teacher_aligned = sorted({int(t) for _, t in pairs})
    if teacher_aligned:
        _ring(ax, t_depth[teacher_aligned], teacher[teacher_aligned], 110, 1.8, label="aligned layers")
    student_aligned = sorted({int(s) for s, _ in pairs})
    for index, (label, curve) in enumerate(student_curves):
        values = _vector(curve)
        depth = np.linspace(0.0, 1.0, values.size) if values.size > 1 else np.zeros(1)
        color = cmap(0.85 * index / max(1, len(student_curves) - 1)) if len(student_curves) > 1 else "tab:blue"
        ax.plot(depth, values, color=color, linewidth=1.4, marker="s", markersize=3.5, label=label)
        if student_aligned and max(student_aligned) < values.size:
            _ring(ax, depth[student_aligned], values[student_aligned], 80, 1.2)
    ax.set_xlabel("relative depth l / n (0 = embeddings, 1 = last block)")
    ax.set_ylabel("spectral intensity")
    ax.set_title(title or "Layer intensity: teacher vs student")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _ring(ax, x, y, size: float, width: float, **label) -> None:
    """Orange rings around the aligned layers' points."""
    ax.scatter(x, y, s=size, facecolors="none", edgecolors="tab:orange", linewidths=width, zorder=5, **label)


def _plot_history(ax2, history) -> None:
    """The agreement panel: Pearson (left axis) and mean relative error (right axis) over training steps."""
    steps = [record["step"] for record in history]
    for key, style in (("pearson_all", "-o"), ("pearson_aligned", "--s")):
        values = [np.nan if record.get(key) is None else record[key] for record in history]
        if not all(np.isnan(values)):
            ax2.plot(steps, values, style, markersize=3.5, label=f"{key} (left)")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("Pearson correlation with the teacher")
    ax3 = ax2.twinx()
    for key, style in (("mre_all", "-^"), ("mre_aligned", "--v")):
        values = [np.nan if record.get(key) is None else record[key] for record in history]
        if not all(np.isnan(values)):
            ax3.plot(
                steps,
                values,
                style,
                color="tab:red" if key == "mre_all" else "tab:pink",
                markersize=3.5,
                label=f"{key} (right)",
            )
    ax3.set_ylabel("mean relative error vs the teacher")
    handles = ax2.get_legend_handles_labels()[0] + ax3.get_legend_handles_labels()[0]
    labels = ax2.get_legend_handles_labels()[1] + ax3.get_legend_handles_labels()[1]
    ax2.legend(handles, labels, fontsize=7, loc="best")
    ax2.set_title("Agreement with the teacher over training")
    ax2.grid(alpha=0.3)


# --------------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------------
class _TeacherRecorder(ModelAdapter):
    """Wraps the teacher adapter for :func:`collect_profile`: the one teacher pass over the sample that gives the
    teacher's curve also keeps, per batch, the teacher's hidden states at the paired layers (on the CPU), which
    every later measurement of the student's alignment loss reads instead of running the teacher again."""

    name = "dynamics-teacher"

    def __init__(self, teacher_adapter, teacher_layers):
        self.teacher_adapter, self.teacher_layers = teacher_adapter, sorted(set(teacher_layers))
        self.hidden: list = []  # per batch: {teacher layer: hidden state}

    def forward(self, model, inputs: dict, output_hidden_states: bool = True, head=None):
        out = self.teacher_adapter.forward(model, inputs, output_hidden_states=True)
        self.hidden.append({t: out.hidden_states[t].detach().to("cpu") for t in self.teacher_layers})
        return out

    def num_layers(self, model) -> int:
        return self.teacher_adapter.num_layers(model)


class _FrequencyLossProbe(ModelAdapter):
    """Wraps the student adapter for :func:`collect_profile`: the same forward pass that feeds the student's
    profile also accumulates the alignment loss of the pairs against the teacher's hidden states of the same
    batch (recorded once by :class:`_TeacherRecorder`), computed by ``alignment_loss`` (the trainer's
    :meth:`~hf_spectralkd.SpectralDistillationTrainer.pair_alignment_loss`: the pair's projection, then
    ``alignment_loss``, so the logged value is the training term for every configuration and subclass)."""

    name = "dynamics-probe"

    def __init__(self, student_adapter, teacher_hidden, pairs, alignment_loss):
        self.student_adapter, self.teacher_hidden = student_adapter, teacher_hidden
        self.pairs, self.alignment_loss = list(pairs), alignment_loss
        self.weighted_sum, self.count, self.batch = 0.0, 0, 0

    def forward(self, model, inputs: dict, output_hidden_states: bool = True, head=None):
        student = self.student_adapter.forward(model, inputs, output_hidden_states=True)
        if self.pairs:
            teacher = self.teacher_hidden[self.batch]
            mask = student.attention_mask
            losses = []
            for index, (s, t) in enumerate(self.pairs):
                hidden = student.hidden_states[s]
                losses.append(self.alignment_loss(index, hidden, teacher[t].to(hidden.device), mask))
            size = int(student.logits.shape[0])
            self.weighted_sum += float(torch.stack(losses).mean()) * size
            self.count += size
        self.batch += 1
        return student

    def num_layers(self, model) -> int:
        return self.student_adapter.num_layers(model)

    @property
    def freq_loss(self) -> float | None:
        return self.weighted_sum / self.count if self.count else None


class _Sample:
    """A fixed sample, collated once into batches (kept on the CPU), with the teacher's profile on it and the
    teacher's hidden states at the paired layers: what every measurement of the student on it needs from the
    teacher, computed once."""

    def __init__(self, rows, batches: list, teacher_profile, teacher_hidden: list, info: dict):
        self.rows, self.batches, self.info = rows, batches, info
        self.teacher_profile, self.teacher_hidden = teacher_profile, teacher_hidden


class SpectralDynamicsCallback(TrainerCallback):
    """Measures the student's spectral intensity curve during distillation (on by default).

    Added by :class:`~hf_spectralkd.SpectralDistillationTrainer` when ``args.spectral_dynamics`` is true and
    an ``eval_dataset`` is given. A fixed sample of ``args.dynamics_samples`` evaluation examples (indices
    drawn once with ``args.seed``; a seeded shuffle buffer of an iterable dataset; the first dataset of a dict) is
    measured

    * at the start of training (step 0 curve), at every evaluation (once per global step), and at the end of
      training if the last measurement is stale (the model ``train()`` returns);
    * the teacher runs once over the sample: its curve and its hidden states at the paired layers (for the
      alignment loss) are kept; the sample is collated into batches once.

    Each measurement joins the evaluation's metrics (one dictionary per evaluation; outside an evaluation, at the
    start and end of training, it is logged with ``Trainer.log``) under, with ``prefix`` the evaluation's
    ``metric_key_prefix`` (``eval``; ``eval`` too for the start/end entries):

    * ``{prefix}_dynamics/student_intensity_l{i}`` for every ``hidden_states`` index ``i`` (0 = embeddings);
    * ``{prefix}_dynamics/pearson_aligned`` (with at least :data:`MIN_PEARSON_POINTS` pairs),
      ``{prefix}_dynamics/mre_aligned`` (absent without pairs), ``{prefix}_dynamics/pearson_all``,
      ``{prefix}_dynamics/mre_all`` (all layers on a common depth grid), see :func:`curve_agreement`;
    * ``{prefix}_dynamics/freq_loss``: the mean alignment loss of the pairs on the sample, by the trainer's
      ``alignment_loss`` (the training ``freq_loss`` term; absent without pairs).

    ``predict()`` adds ``test_dynamics/...`` (its ``metric_key_prefix``) measured on a seeded sample of the
    predicted data (not added to the training history).

    After training the main process writes ``distillation_dynamics.json`` (all measurements, the teacher
    curve, the layer map, the callback's own cost in seconds) and ``distillation_dynamics.png`` to
    ``args.output_dir``. Memory: the per-measurement summaries (a few floats per layer), the sample's collated
    batches and the teacher's hidden states at the paired layers on the sample (CPU memory).
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.num_samples = int(trainer.args.dynamics_samples)
        self.records: list = []
        self.seconds = 0.0  # cumulative wall time of this callback (measurements + report)
        self._fixed: _Sample | None = None

    @property
    def teacher_profile(self):
        """The teacher's profile on the fixed sample (None before the first measurement)."""
        return self._fixed.teacher_profile if self._fixed is not None else None

    @property
    def _sample_info(self) -> dict:
        return self._fixed.info if self._fixed is not None else {}

    # ---------------------------------------------------------------- the fixed sample
    def _sample_dataset(self):
        """The fixed sample of the evaluation data (rows, before collation)."""
        if self._fixed is not None:
            return self._fixed.rows
        return self._draw(self._eval_source()[1], "evaluation dataset")[0]

    def _eval_source(self) -> tuple:
        """``(name, dataset)`` the fixed sample is drawn from: the eval dataset (name None) or a dict's first one."""
        dataset = self.trainer.eval_dataset
        if isinstance(dataset, dict):
            if not dataset:
                raise ValueError("spectral dynamics: eval_dataset is an empty dict")
            return next(iter(dataset.items()))
        return None, dataset

    def _draw(self, dataset, what: str):
        trainer = self.trainer
        seed = trainer.args.seed
        sample = sample_dataset(dataset, self.num_samples, seed)
        if isinstance(sample, list):  # an iterable dataset has no length to sample from
            how = f"shuffle buffer (iterable dataset, seed {seed})"
        else:
            how = f"random subset (seed {seed})"
        if len(sample) == 0:
            raise ValueError(
                f"spectral dynamics: the {what} is empty; pass a non-empty eval_dataset or set "
                "spectral_dynamics=False"
            )
        return sample, {"num_samples": len(sample), "selection": how, "seed": seed}

    def dataloader(self, rows=None):
        """The fixed sample (or ``rows``) as batches of model inputs (the trainer's collator, which drops the unused
        columns, and its eval batch size)."""
        from torch.utils.data import DataLoader

        return DataLoader(
            self._sample_dataset() if rows is None else rows,
            batch_size=self.trainer.args.per_device_eval_batch_size,
            shuffle=False,
            collate_fn=self.trainer.data_collator,
        )

    def _prepare(self, rows, info: dict, pairs) -> _Sample:
        """Collate ``rows`` once and run the teacher over them once (its curve and paired hidden states)."""
        trainer = self.trainer
        batches = list(self.dataloader(rows))
        recorder = _TeacherRecorder(trainer.teacher_adapter, [t for _, t in pairs])
        profile = collect_profile(trainer.teacher, batches, adapter=recorder, device=trainer.accelerator.device,
                                  entropy=False)
        return _Sample(rows, batches, profile, recorder.hidden, info)

    def _fixed_sample(self, pairs) -> _Sample:
        if self._fixed is None:
            name, dataset = self._eval_source()
            rows, info = self._draw(dataset, "evaluation dataset")
            self._fixed = self._prepare(rows, {**info, "eval_dataset": name}, pairs)
        return self._fixed

    # ---------------------------------------------------------------- measuring
    def measure(self, state, event: str, log: bool = True) -> dict:
        """Measure the student now, log the result (unless ``log=False``) and keep its summary (without touching
        the run's RNG)."""
        with preserve_rng_state(self.trainer.accelerator.device):
            record = self._measure(state, event)
        if log:
            self.trainer.log(self.log_values(record))
        return record

    def evaluation_metrics(self, state, metric_key_prefix: str = DEFAULT_PREFIX, dataloader=None) -> dict:
        """The dynamics keys an evaluation adds to its metrics (so each evaluation logs and prints one dictionary),
        named after its ``metric_key_prefix``.

        Without ``dataloader`` (``evaluate()``): the fixed sample, measured now unless already measured at this
        step; with a dict of eval datasets only the evaluation of the sampled (first) dataset gets them. With
        ``dataloader`` (``predict()``): a seeded sample of its dataset, measured now (teacher included) and not
        added to the training history."""
        if dataloader is not None:
            dataset = getattr(dataloader, "dataset", None)
            if dataset is None:
                return {}
            with preserve_rng_state(self.trainer.accelerator.device):
                record = self._measure(state, "predict", dataset=dataset)
            return self.log_values(record, metric_key_prefix)
        dataset = self.trainer.eval_dataset
        name = next(iter(dataset), None) if isinstance(dataset, dict) else None
        if name is not None and not metric_key_prefix.endswith(f"_{name}"):
            return {}  # another dataset of the dict: the fixed sample is not from it
        record = self.measure(state, "evaluate", log=False) if self._stale(state) else self.records[-1]
        return self.log_values(record, metric_key_prefix)

    @staticmethod
    def log_values(record: dict, metric_key_prefix: str = DEFAULT_PREFIX) -> dict:
        """``{prefix}_dynamics/student_intensity_l{i}``, the agreement keys and ``{prefix}_dynamics/freq_loss`` of one
        measurement (the agreement values that are undefined, e.g. ``pearson_aligned`` with < 4 pairs, are left
        out)."""
        prefix = f"{metric_key_prefix}_{LOG_PREFIX}" if metric_key_prefix else LOG_PREFIX
        logs = {f"{prefix}student_intensity_l{i}": value for i, value in enumerate(record["student_intensity"])}
        for key in (*AGREEMENT_KEYS, "freq_loss"):
            if record[key] is not None:
                logs[f"{prefix}{key}"] = record[key]
        return logs

    def _measure(self, state, event: str, dataset=None) -> dict:
        start = time.perf_counter()
        trainer = self.trainer
        layer_map = trainer.layer_map if trainer.layer_map is not None else trainer.setup_layer_map()
        pairs = layer_map.pairs
        if dataset is None:
            sample = self._fixed_sample(pairs)
        else:
            rows, info = self._draw(dataset, "predicted dataset")
            sample = self._prepare(rows, info, pairs)
        # the training term of each pair (its projection, the configured alignment); attention transfer compares
        # Q/K/V relations, not these hidden states: no freq_loss key then
        probed = [] if getattr(trainer.args, "alignment", "frequency") == "attention" else pairs
        probe = _FrequencyLossProbe(trainer.student_adapter, sample.teacher_hidden, probed,
                                    trainer.pair_alignment_loss)
        profile = collect_profile(
            unwrap_model(trainer.model), sample.batches, adapter=probe, device=trainer.accelerator.device,
            entropy=False, check_finite=False,  # (a diverging student: the loss guard names it)
        )
        student = [float(v) for v in profile.intensity]
        agreement = curve_agreement(sample.teacher_profile.intensity, student, pairs)
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        record = {
            "step": int(state.global_step),
            "epoch": None if state.epoch is None else float(state.epoch),
            "event": event,
            "student_intensity": student,
            **{key: json_number(value) for key, value in agreement.items()},
            "freq_loss": json_number(probe.freq_loss),
            "seconds": elapsed,
        }
        if dataset is None:
            self.records.append(record)
        return record

    def _stale(self, state) -> bool:
        return not self.records or self.records[-1]["step"] != state.global_step

    def on_train_begin(self, args, state, control, **kwargs):
        if self._stale(state):
            self.measure(state, "train_begin")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        # several eval datasets (or an evaluate() call right after one) at the same step: measured once
        if self._stale(state):
            self.measure(state, "evaluate")

    def on_train_end(self, args, state, control, **kwargs):
        best_loaded = args.load_best_model_at_end and state.best_model_checkpoint is not None
        if self._stale(state) or best_loaded:
            self.measure(state, "train_end")
        if state.is_world_process_zero:
            self.write_report(args.output_dir, state)

    # ---------------------------------------------------------------- report
    def report(self, state=None) -> dict:
        trainer = self.trainer
        layer_map = trainer.layer_map
        runtime = None
        for entry in reversed(state.log_history if state is not None else []):
            if "train_runtime" in entry:
                runtime = float(entry["train_runtime"])
                break
        return {
            "format": "hf_spectralkd.DistillationDynamics/1",
            "teacher_intensity": [float(v) for v in self.teacher_profile.intensity]
            if self.teacher_profile is not None
            else None,
            "layer_map": {
                "teacher_layers": list(layer_map.teacher_layers) if layer_map else [],
                "student_layers": list(layer_map.student_layers) if layer_map else [],
                "pairs": [list(p) for p in layer_map.pairs] if layer_map else [],
                "strategy": layer_map.strategy if layer_map else None,
            },
            "sample": dict(self._sample_info),
            "agreement_definition": {
                "aligned": "student intensity at student_layers vs teacher intensity at the paired teacher_layers",
                "all": "both whole curves (index 0 = embeddings .. n) on relative depth l/n, linearly resampled to "
                "max(n_teacher, n_student)+1 evenly spaced points",
                "pearson": "Pearson correlation of the two vectors",
                "mre": "mean |student - teacher| / |teacher|",
            },
            "log_keys": [
                f"{LOG_PREFIX}student_intensity_l{{i}}",
                *(f"{LOG_PREFIX}{k}" for k in (*AGREEMENT_KEYS, "freq_loss")),
            ],
            "measurements": self.records,
            "callback_seconds": self.seconds,
            "train_runtime_s": runtime,
            "callback_fraction_of_train_runtime": (self.seconds / runtime) if runtime else None,
        }

    def write_report(self, output_dir: str, state=None) -> tuple:
        """Write ``distillation_dynamics.json`` and ``distillation_dynamics.png``; returns their paths."""
        if not self.records or self.teacher_profile is None:
            return ()
        start = time.perf_counter()
        os.makedirs(output_dir, exist_ok=True)
        plot_path = os.path.join(output_dir, DYNAMICS_PLOT_FILENAME)
        chosen = _spread(self.records, 4)
        pairs = self.trainer.layer_map.pairs if self.trainer.layer_map is not None else []
        plot_intensity_curves(
            plot_path,
            self.teacher_profile.intensity,
            [(f"student @ step {r['step']}", r["student_intensity"]) for r in chosen],
            pairs=pairs,
            history=self.records,
            title=f"Distillation dynamics ({self._sample_info.get('num_samples')} eval examples)",
        )
        self.seconds += time.perf_counter() - start  # the JSON records the cost including the plot
        json_path = write_json(os.path.join(output_dir, DYNAMICS_JSON_FILENAME), self.report(state), indent=1)
        return json_path, plot_path


def _spread(records: list, count: int) -> list:
    """Up to ``count`` records evenly spread over the list, first and last included; of several records at one
    step (the last evaluation and the end of training) the latest, so no step is listed twice."""
    latest = {record["step"]: record for record in records}
    records = sorted(latest.values(), key=lambda record: record["step"])
    if len(records) <= count:
        return list(records)
    picks = sorted({round(i * (len(records) - 1) / (count - 1)) for i in range(count)})
    return [records[i] for i in picks]
