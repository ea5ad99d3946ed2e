"""Streaming spectral analysis of a model over data, and the layer-intensity graph."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .adapters import get_adapter
from .constants import PLOT_FILENAME, PROFILE_FILENAME
from .sampling import sample_indices
from .spectral import SpectralProfile

__all__ = ["check_finite_hidden_states", "collect_profile", "analyze", "plot_layer_intensity"]


def _to_device(batch: dict, device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - parameter-free model
        return torch.device("cpu")


def check_finite_hidden_states(hidden_states, attention_mask, model, description: str = "spectral analysis") -> None:
    """Raise ``ValueError`` naming the first layer whose hidden states hold inf or NaN on real tokens (a model with
    damaged or overflowing weights): its intensity would be NaN, and "intensity contains NaN" names no model."""
    from .adapters.base import unwrap_model

    for index, hidden in enumerate(hidden_states or ()):
        values = hidden
        if attention_mask is not None and hidden.dim() == 3 and tuple(attention_mask.shape) == tuple(hidden.shape[:2]):
            values = hidden[attention_mask.bool()]  # padding positions are not measured
        if bool(torch.isfinite(values).all()):
            continue
        kinds = [name for name, found in (("inf", torch.isinf(values).any()), ("NaN", torch.isnan(values).any()))
                 if bool(found)]
        layer = "the embeddings" if index == 0 else f"the output of block {index}"
        raise ValueError(
            f"{description}: the model {type(unwrap_model(model, peft=True)).__name__} returns non-finite hidden "
            f"states ({' and '.join(kinds)}) at hidden_states[{index}] ({layer}): its outputs are broken, not the "
            "settings (damaged weights, or values that overflow the dtype, e.g. fp16); check the model's weights and "
            "dtype. Nothing was selected or trained"
        )


@torch.inference_mode()
def collect_profile(
    model,
    dataloader,
    adapter=None,
    device=None,
    max_samples: int | None = None,
    progress: bool = False,
    description: str = "spectral analysis",
    entropy: bool = True,
    check_finite: bool = True,
) -> SpectralProfile:
    """Run ``model`` once over ``dataloader`` (batches of model inputs) and accumulate its spectral profile.

    Memory stays flat: each batch's ``hidden_states`` are reduced to per-bin sums and dropped. ``entropy=False``
    skips the spectral entropy's sums (one FFT per layer less; the dynamics callback measures the intensity only).
    ``check_finite``: a layer whose hidden states hold inf / NaN is an error naming it
    (:func:`check_finite_hidden_states`); off for a student measured while it trains (a diverging student is the
    loss guard's to report).
    """
    adapter = adapter or get_adapter(model)
    device = device or _model_device(model)
    was_training = model.training
    model.eval()
    profile = SpectralProfile(with_entropy=entropy)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_samples, desc=description, unit="samples")
    try:
        for batch in dataloader:
            if max_samples is not None and profile.num_samples >= max_samples:
                break
            batch = _to_device(batch, device)
            if max_samples is not None:
                remaining = max_samples - profile.num_samples
                batch = {k: (v[:remaining] if isinstance(v, torch.Tensor) and v.dim() > 0 else v)
                         for k, v in batch.items()}
            out = adapter.forward(model, batch, output_hidden_states=True)
            if check_finite:
                check_finite_hidden_states(out.hidden_states, out.attention_mask, model, description)
            profile.update(out.hidden_states, out.attention_mask)
            if bar is not None:
                bar.update(int(out.logits.shape[0]))
    finally:
        if bar is not None:
            bar.close()
        model.train(was_training)
    if profile.num_samples == 0:
        raise ValueError("spectral analysis read no data: the dataset or dataloader is empty")
    return profile


def plot_layer_intensity(
    profile: SpectralProfile, path: str, selected: Sequence[int] | None = None, title: str | None = None
) -> str:
    """Write the layer-intensity graph (selected layers highlighted; the spectral entropy on a second axis when the
    profile has it) and the per-layer spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intensity = profile.intensity.tolist()
    selected = set(selected or [])
    layers = list(range(len(intensity)))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    colors = ["tab:orange" if i in selected else "tab:blue" for i in layers]
    ax1.bar(layers, intensity, color=colors)
    ax1.plot(layers, intensity, color="black", linewidth=1, marker="o", markersize=3)
    ax1.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    ax1.set_ylabel("spectral intensity")
    step = max(1, -(-len(layers) // 13))  # at most ~13 labelled ticks: RoBERTa-large has 25 tensors
    ax1.set_xticks(layers[::step])
    low, high = min(intensity), max(intensity)
    # the axis starts at 0 (a truncated axis made a 10 % spread look like a factor of ten) and the spread is printed
    ax1.set_ylim(0.0, (high * 1.12) or 1e-3)
    spread = (high - low) / high if high > 0 else 0.0
    ax1.text(0.02, 0.97, f"max {high:.4g}, min {low:.4g}: spread {100 * spread:.1f} % of the max",
             transform=ax1.transAxes, va="top", fontsize=8)
    ax1.set_title(title or "Layer intensity" + (" (orange = selected)" if selected else ""))
    if profile.has_entropy:
        # the norm-free measure beside the intensity: on post-LayerNorm text encoders the intensity tracks the
        # activation norm (docs/method.md, "What spectral intensity measures on text")
        entropy = profile.entropy.tolist()
        ax3 = ax1.twinx()
        ax3.plot(layers, entropy, color="tab:red", linewidth=1.2, marker="s", markersize=3,
                 label="spectral entropy (norm-free)")
        ax3.set_ylim(0.0, 1.05)
        ax3.set_ylabel("spectral entropy (red, 0..1)", color="tab:red")
        ax3.legend(loc="lower right", fontsize=7)
    cmap = plt.get_cmap("viridis")
    for i, spectrum in enumerate(profile.spectra):
        d = spectrum.shape[0]
        half = spectrum[: d // 2 + 1].numpy()
        ax2.plot(range(len(half)), half, color=cmap(i / max(1, len(layers) - 1)),
                 linewidth=1.6 if i in selected else 0.8,
                 label=f"layer {i}" if len(layers) <= 13 else None)
    ax2.set_yscale("log")
    ax2.set_xlabel("frequency bin k (hidden axis, 0..D/2)")
    ax2.set_ylabel("mean |F[k]|")
    ax2.set_title("Per-layer spectra")
    if len(layers) <= 13:
        ax2.legend(fontsize=7, ncol=2)
    else:  # too many lines for a legend: the colour scale says which layer a line is
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        fig.colorbar(ScalarMappable(norm=Normalize(0, len(layers) - 1), cmap=cmap), ax=ax2, label="layer")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyze(
    model,
    data,
    tokenizer=None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    max_samples: int | None = None,
    batch_size: int = 32,
    max_length: int | None = 128,
    select: int | None = None,
    strategy="topk",
    include_embeddings: bool = False,
    output_dir: str | None = None,
    progress: bool = True,
    metadata: dict | None = None,
    shuffle: bool = True,
    seed: int = 42,
) -> SpectralProfile:
    """Analyse ``model`` over ``data`` and (with ``output_dir``) write ``spectral_profile.json`` and
    ``layer_intensity.png``.

    ``data`` is a ``torch.utils.data.DataLoader`` yielding model inputs, or a ``datasets.Dataset`` / list
    of dicts with a raw ``text_column`` (then ``tokenizer`` is required and batches are padded
    dynamically). With ``max_samples`` a seeded random sample of that many rows is read (``shuffle=False``:
    the first rows; files sorted by label would otherwise give only a few classes). With ``select=k`` the
    profile records the ``k`` layers chosen by ``strategy``.
    """
    from torch.utils.data import DataLoader

    if isinstance(data, DataLoader):
        loader = data
    else:
        loader = _text_loader(data, tokenizer, text_column, text_pair_column, max_samples, batch_size, max_length,
                              shuffle, seed)
    profile = collect_profile(model, loader, max_samples=max_samples, progress=progress)
    profile.metadata.update(metadata or {})
    selected = None
    if select:
        selected = profile.select(select, strategy=strategy, include_embeddings=include_embeddings)
        name = strategy if isinstance(strategy, str) else "manual"
        profile.metadata.update({"selected_layers": selected, "strategy": name})
    if output_dir is not None:
        profile.save(os.path.join(output_dir, PROFILE_FILENAME))
        plot_layer_intensity(profile, os.path.join(output_dir, PLOT_FILENAME), selected=selected)
    return profile


def _text_loader(rows, tokenizer, text_column, text_pair_column, max_samples, batch_size, max_length, shuffle, seed):
    """Batches of model inputs over raw text rows, tokenised by the text task's one tokeniser."""
    from .tasks import get_task

    if tokenizer is None:
        raise ValueError("analyze() needs a tokenizer when data is a dataset of raw text (or pass a DataLoader)")
    if max_samples is not None:
        picked = sample_indices(len(rows), max_samples, seed) if shuffle else range(min(max_samples, len(rows)))
        rows = rows.select(picked) if hasattr(rows, "select") else [rows[i] for i in picked]
    column_names = getattr(rows, "column_names", None) or (list(rows[0].keys()) if len(rows) else [])
    if text_column not in column_names:
        raise ValueError(f"text column {text_column!r} not found: available columns are {column_names}")
    task = get_task("text-classification")
    return task.analysis_loader(rows, tokenizer, batch_size, text_column=text_column,
                                text_pair_column=text_pair_column, max_length=max_length)
