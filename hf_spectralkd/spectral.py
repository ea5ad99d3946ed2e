"""Pure spectral math of SpectralKD.

SpectralKD: "A Unified Framework for Interpreting and Distilling Vision Transformers via Spectral Analysis"
(Tian, Xu, Li, Pan; arXiv 2412.19055). The definitions here follow docs/method.md exactly:

* spectral intensity of a layer: full DFT over the hidden (channel) axis divided by ``D``, magnitude,
  masked mean over the real tokens of all samples, mean over the ``D`` bins;
* spectral entropy of a layer (norm-free): standardised tokens, DFT over the hidden axis, normalised entropy of
  the mean power over bins ``1..D-1``;
* layer selection: ``topk`` / ``ends`` / ``uniform`` / ``entropy`` / ``last`` / explicit lists, ties towards the
  lower index;
* frequency-alignment loss: ``rfft`` over tokens (``rfft2`` over the patch grid for vision) with
  ``norm="ortho"``, real and imaginary parts stacked, mean squared error.

Everything is computed in float32 whatever the input dtype: ``torch.fft`` in half precision is restricted
to power-of-two sizes on CUDA and loses precision. No Trainer, no I/O except the JSON of
:class:`SpectralProfile`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "FFT_AXES",
    "LOSS_NORMALIZATIONS",
    "LOSS_VARIANTS",
    "SELECTION_STRATEGIES",
    "SpectralProfile",
    "frequency_alignment_loss",
    "layer_spectrum_sums",
    "select_layers",
    "spectral_entropy",
    "spectral_intensity",
    "spectral_spectrum",
    "to_token_layout",
]

FFT_AXES = ("tokens", "hidden", "tokens+hidden")
LOSS_VARIANTS = ("complex", "magnitude")
LOSS_NORMALIZATIONS = ("teacher_energy",)
SELECTION_STRATEGIES = ("topk", "ends", "uniform", "entropy", "last")
#: strategies that rank the teacher's layers by a measured profile (the others read no model)
PROFILE_STRATEGIES = ("topk", "ends", "entropy")
#: standardisation epsilon of the spectral entropy: z = (x - mean) / sqrt(var + eps), as LayerNorm
ENTROPY_EPS = 1e-6


# --------------------------------------------------------------------------------------------------
# Spectral intensity
# --------------------------------------------------------------------------------------------------
def to_token_layout(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Return ``(X, M)`` with ``X`` of shape ``(N, L, D)`` in float32 and ``M`` of shape ``(N, L)``.

    A 3-D tensor is read as ``(N, L, D)`` (tokens, hidden last, as in HF ``hidden_states``). A 4-D tensor
    is a vision feature map in ``NCHW`` layout (timm's ``forward_intermediates`` default): the ``H*W``
    positions play the role of tokens and the channel axis is ``D``.
    """
    if hidden.dim() == 4:
        if attention_mask is not None:
            raise ValueError("attention_mask is only valid for (N, L, D) token tensors, not NCHW feature maps")
        n, c, h, w = hidden.shape
        hidden = hidden.reshape(n, c, h * w).transpose(1, 2)
    elif hidden.dim() != 3:
        raise ValueError(
            f"expected a (N, L, D) token tensor or an (N, C, H, W) feature map, got shape {tuple(hidden.shape)}"
        )
    x = hidden.float()
    n, length, _ = x.shape
    if attention_mask is None:
        mask = torch.ones(n, length, dtype=torch.float32, device=x.device)
    else:
        if tuple(attention_mask.shape) != (n, length):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, expected {(n, length)} to match the "
                "hidden states"
            )
        mask = attention_mask.to(device=x.device, dtype=torch.float32)
    return x, mask


def layer_spectrum_sums(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Un-normalised per-bin sums of one layer: ``(Σ_{n,t} M·|F[n,t,k]|  for k in 0..D-1,  Σ M)``.

    These are the streaming sufficient statistics of step 2 of the definition; :class:`SpectralProfile`
    adds them up batch by batch. Uses ``rfft`` and mirrors the one-sided magnitudes (for real input
    ``|F[k]| = |F[D-k]|``), which gives the full ``D`` bins of the definition at half the cost.
    """
    x, mask = to_token_layout(hidden, attention_mask)
    d = x.shape[-1]
    x = x * mask.unsqueeze(-1)  # padded rows become zero: they add nothing to the masked sum
    half = torch.fft.rfft(x, dim=-1).abs().div_(d)  # (N, L, D//2+1), the 1/D of the definition
    return _all_bins(half.sum(dim=(0, 1)), d), mask.sum()


def _all_bins(one_sided: torch.Tensor, d: int) -> torch.Tensor:
    """The ``D`` bins of a real input's spectrum from its one-sided ``rfft`` sums (``|F[k]| = |F[D-k]|``)."""
    mirrored = one_sided[1 : (d + 1) // 2].flip(0)  # bins D-1 .. D//2+1
    return torch.cat([one_sided, mirrored]) if d > 1 else one_sided


def _per_token_means(hidden_states, attention_mask, sums_of) -> list:
    """``sums / count`` of ``sums_of(hidden, mask)`` for every tensor of ``hidden_states`` (a mean over its real
    tokens); an error naming the tensor whose mask selects no token."""
    out = []
    for index, hidden in enumerate(_as_sequence(hidden_states)):
        sums, count = sums_of(hidden, attention_mask)
        if count <= 0:
            raise ValueError(f"hidden_states[{index}]: the attention mask selects no token")
        out.append(sums / count)
    return out


def spectral_spectrum(hidden_states, attention_mask: torch.Tensor | None = None) -> list:
    """Per-bin spectrum ``S[k]`` (length ``D`` each, float32) of every tensor in ``hidden_states``."""
    return _per_token_means(hidden_states, attention_mask, layer_spectrum_sums)


def spectral_intensity(hidden_states, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One spectral intensity per tensor of ``hidden_states`` (``n+1`` values for an HF output).

    ``I = mean_k S[k]`` with ``S[k] = Σ_{n,t} M·|DFT_c(X)[n,t,k] / D| / Σ M``. Returns a float32 tensor on
    the device of the inputs.
    """
    return torch.stack([spectrum.mean() for spectrum in spectral_spectrum(hidden_states, attention_mask)])


def layer_power_sums(hidden: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """Un-normalised per-bin power of one layer's *standardised* tokens: ``(Σ_{n,t} M·|F[n,t,k]|² for k in
    0..D-1, Σ M)`` with ``F = DFT(z)/D`` over the hidden axis and ``z = (x − mean)/sqrt(var + ε)`` over that axis
    (population variance, ``ε`` = :data:`ENTROPY_EPS`). The streaming statistics of :func:`spectral_entropy`."""
    x, mask = to_token_layout(hidden, attention_mask)
    d = x.shape[-1]
    mean = x.mean(dim=-1, keepdim=True)
    var = x.var(dim=-1, unbiased=False, keepdim=True)
    z = (x - mean) / torch.sqrt(var + ENTROPY_EPS)
    z = z * mask.unsqueeze(-1)
    half = torch.fft.rfft(z, dim=-1).abs().div_(d).pow_(2)
    return _all_bins(half.sum(dim=(0, 1)), d), mask.sum()


def entropy_of_power(power: torch.Tensor) -> float:
    """Normalised entropy ``H = −Σ_{k≥1} p_k log p_k / log(D−1)`` of a per-bin power spectrum (DC, bin 0, left
    out), ``p = P/ΣP``; 1 = a flat spectrum, 0 = all power in one bin. NaN when ``D < 3`` (undefined)."""
    p = power.double()[1:]
    d1 = p.numel()
    total = float(p.sum())
    if d1 < 2 or total <= 0:
        return float("nan")
    p = p / total
    nz = p[p > 0]
    return float(-(nz * nz.log()).sum() / math.log(d1))


def spectral_entropy(hidden_states, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One norm-free spectral measure per tensor of ``hidden_states`` (docs/method.md, "Spectral entropy").

    Each real token's vector is standardised over the hidden axis, transformed with a DFT over that axis (divided
    by ``D``); the power ``|F|²`` is averaged over the real tokens of all samples; bins ``1..D−1`` normalised to a
    distribution ``p``; ``H = −Σ p log p / log(D−1)`` in [0, 1]. Unlike :func:`spectral_intensity` it does not
    move with the activations' scale (the LayerNorm gain). Returns a float32 tensor on the device of the inputs."""
    powers = _per_token_means(hidden_states, attention_mask, layer_power_sums)
    return torch.tensor([entropy_of_power(p) for p in powers], dtype=torch.float32, device=powers[0].device)


def _as_sequence(hidden_states) -> list:
    if isinstance(hidden_states, torch.Tensor):
        if hidden_states.dim() in (3, 4):
            return [hidden_states]
        raise ValueError(
            f"expected a sequence of hidden-state tensors, got one tensor of shape {tuple(hidden_states.shape)}"
        )
    tensors = list(hidden_states)
    if not tensors:
        raise ValueError("hidden_states is empty")
    return tensors


@dataclass
class SpectralProfile:
    """Streaming accumulator of per-layer spectra over a dataset.

    Memory is ``O(Σ_l D_l)`` whatever the number of batches: only the per-bin sums and the token count of
    each layer are kept. ``update`` takes the ``hidden_states`` of one batch (same convention as
    :func:`spectral_intensity`).
    """

    spectrum_sums: list = field(default_factory=list)
    token_counts: list = field(default_factory=list)
    num_samples: int = 0
    metadata: dict = field(default_factory=dict)
    #: per-bin power sums of the standardised tokens (:func:`layer_power_sums`), for :attr:`entropy`; empty in
    #: profiles saved before the spectral entropy existed
    power_sums: list = field(default_factory=list)
    #: accumulate the power sums of :attr:`entropy` (False: the intensity only, one FFT per layer less)
    with_entropy: bool = True

    @torch.no_grad()
    def update(self, hidden_states, attention_mask: torch.Tensor | None = None) -> SpectralProfile:
        tensors = _as_sequence(hidden_states)
        if self.spectrum_sums and len(tensors) != len(self.spectrum_sums):
            raise ValueError(
                f"this profile has {len(self.spectrum_sums)} layers but the batch has {len(tensors)} "
                "hidden-state tensors"
            )
        tracks_power = self.with_entropy and len(self.power_sums) == len(self.spectrum_sums)
        for index, hidden in enumerate(tensors):
            sums, count = layer_spectrum_sums(hidden, attention_mask)
            sums = sums.double().cpu()
            power = layer_power_sums(hidden, attention_mask)[0].double().cpu() if tracks_power else None
            if index >= len(self.spectrum_sums):
                self.spectrum_sums.append(sums)
                self.token_counts.append(float(count))
                if power is not None:
                    self.power_sums.append(power)
            else:
                if sums.shape != self.spectrum_sums[index].shape:
                    raise ValueError(
                        f"hidden_states[{index}] has width {sums.shape[0]}, earlier batches had "
                        f"{self.spectrum_sums[index].shape[0]}"
                    )
                self.spectrum_sums[index] += sums
                self.token_counts[index] += float(count)
                if power is not None:
                    self.power_sums[index] += power
        self.num_samples += int(tensors[0].shape[0])
        return self

    @property
    def num_layers(self) -> int:
        return len(self.spectrum_sums)

    @property
    def spectra(self) -> list:
        self._check_nonempty()
        return [(s / c).float() for s, c in zip(self.spectrum_sums, self.token_counts, strict=True)]

    @property
    def intensity(self) -> torch.Tensor:
        return torch.stack([s.mean() for s in self.spectra])

    @property
    def has_entropy(self) -> bool:
        return bool(self.power_sums) and len(self.power_sums) == len(self.spectrum_sums)

    @property
    def entropy(self) -> torch.Tensor | None:
        """The spectral entropy of each layer (:func:`spectral_entropy`), or None for a profile saved before it
        existed (measure it again to rank by entropy)."""
        self._check_nonempty()
        if not self.has_entropy:
            return None
        return torch.tensor(
            [entropy_of_power(p / c) for p, c in zip(self.power_sums, self.token_counts, strict=True)],
            dtype=torch.float32,
        )

    def select(self, k: int, strategy="topk", include_embeddings: bool = False) -> list:
        return select_layers(self.intensity, k, strategy=strategy, include_embeddings=include_embeddings,
                             entropy=self.entropy if strategy == "entropy" else None)

    def _check_nonempty(self):
        if not self.spectrum_sums or min(self.token_counts) <= 0:
            raise ValueError("the spectral profile is empty: update() it with at least one batch of real tokens")

    def to_dict(self) -> dict:
        return {
            "format": "hf_spectralkd.SpectralProfile/1",
            "num_samples": self.num_samples,
            "num_layers": self.num_layers,
            "intensity": [float(v) for v in self.intensity],
            # the norm-free measure beside the intensity (docs/method.md, "What spectral intensity measures on text")
            "entropy": [float(v) for v in self.entropy] if self.has_entropy else None,
            "spectra": [[float(v) for v in s] for s in self.spectra],
            "token_counts": list(self.token_counts),
            "spectrum_sums": [[float(v) for v in s] for s in self.spectrum_sums],
            "power_sums": [[float(v) for v in p] for p in self.power_sums] if self.has_entropy else [],
            "metadata": self.metadata,
        }

    def save(self, path: str | os.PathLike) -> str:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=1)
        os.replace(tmp, path)  # never leave a half-written profile behind
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpectralProfile:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("format") != "hf_spectralkd.SpectralProfile/1":
            raise ValueError(f"{path} is not a spectral profile written by hf_spectralkd (format key missing)")
        return cls(
            spectrum_sums=[torch.tensor(s, dtype=torch.float64) for s in data["spectrum_sums"]],
            token_counts=[float(c) for c in data["token_counts"]],
            num_samples=int(data["num_samples"]),
            metadata=dict(data.get("metadata", {})),
            power_sums=[torch.tensor(p, dtype=torch.float64) for p in data.get("power_sums") or []],
        )


# --------------------------------------------------------------------------------------------------
# Layer selection
# --------------------------------------------------------------------------------------------------
def select_layers(intensity, k: int, strategy: str | Sequence[int] = "topk", include_embeddings: bool = False,
                  entropy=None) -> list:
    """Choose ``k`` layers from an intensity vector indexed like ``hidden_states`` (index 0 = embeddings).

    Strategies: ``"topk"`` (the ``k`` most intense, in ascending layer order), ``"ends"`` (the best
    first-``a`` + last-``b`` split with ``a + b = k`` by total intensity), ``"uniform"`` (evenly spaced,
    ending at the last layer: ``[2, 4, 6]`` for 6 layers and ``k = 3``), ``"entropy"`` (the ``k`` layers of highest
    spectral entropy, ``entropy`` indexed like ``intensity``; needed), ``"last"`` (the last ``k`` layers), or an
    explicit list of indices. Index 0 (embeddings) is a candidate only with ``include_embeddings=True``. Ties go to
    the lower index.
    """
    if strategy == "entropy":
        if entropy is None:
            raise ValueError("strategy='entropy' ranks layers by spectral entropy: pass entropy= (a profile measured "
                             "by this version of SpectralProfile carries it)")
        if len(entropy) != len(intensity):
            raise ValueError(f"entropy has {len(entropy)} values but intensity {len(intensity)}")
        intensity, strategy = entropy, "topk"
    values = [float(v) for v in (intensity.tolist() if isinstance(intensity, torch.Tensor) else intensity)]
    if any(math.isnan(v) for v in values):
        raise ValueError("intensity contains NaN; cannot select layers")
    total = len(values)
    first = 0 if include_embeddings else 1
    candidates = list(range(first, total))
    if not isinstance(strategy, str):
        layers = [int(i) for i in strategy]
        bad = [i for i in layers if not first <= i < total]
        if bad:
            raise ValueError(
                f"explicit layers {bad} are out of range: valid indices are {first}..{total - 1} "
                f"({'embeddings included' if include_embeddings else 'index 0 = embeddings is excluded'})"
            )
        if len(set(layers)) != len(layers):
            raise ValueError(f"explicit layers {layers} contain duplicates")
        if k is not None and len(layers) != k:
            raise ValueError(f"explicit layers {layers} has {len(layers)} entries, expected k={k}")
        return layers
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > len(candidates):
        raise ValueError(f"cannot select k={k} layers: only {len(candidates)} candidate layers ({first}..{total - 1})")
    if strategy == "topk":
        ranked = sorted(candidates, key=lambda i: (-values[i], i))
        return sorted(ranked[:k])
    if strategy == "ends":
        best, best_score = None, None
        for a in range(k, -1, -1):  # more leading layers first, so ties go towards the lower index
            b = k - a
            chosen = candidates[:a] + (candidates[len(candidates) - b :] if b else [])
            score = sum(values[i] for i in chosen)
            if best_score is None or score > best_score:
                best, best_score = chosen, score
        return best
    if strategy == "uniform":
        n = len(candidates)
        return [candidates[math.ceil((j + 1) * n / k) - 1] for j in range(k)]
    if strategy == "last":
        return candidates[len(candidates) - k :]
    raise ValueError(
        f"unknown selection strategy {strategy!r}: valid are {', '.join(SELECTION_STRATEGIES)} or a list of indices"
    )


# --------------------------------------------------------------------------------------------------
# Frequency-alignment loss
# --------------------------------------------------------------------------------------------------
def _pool_width(x: torch.Tensor, width: int, axis: int) -> torch.Tensor:
    """Adaptive average pooling along ``axis`` down to ``width`` (parameter-free)."""
    if x.shape[axis] == width:
        return x
    moved = x.movedim(axis, -1)
    shape = moved.shape
    pooled = F.adaptive_avg_pool1d(moved.reshape(-1, 1, shape[-1]), width).reshape(*shape[:-1], width)
    return pooled.movedim(-1, axis)


def frequency_alignment_loss(
    student_hidden: torch.Tensor,
    teacher_hidden: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    fft_axis: str = "tokens",
    variant: str = "complex",
    bins: int | None = None,
    normalize: bool | str | None = None,
) -> torch.Tensor:
    """Frequency-domain alignment loss of one student/teacher layer pair (float32 scalar).

    Token tensors ``(N, L, D)``: the wider hidden axis is adaptive-average-pooled to the narrower one; each
    sequence's real tokens (``attention_mask == 1``) alone are transformed, ``rfft`` with ``norm="ortho"``
    over the axis given by ``fft_axis`` (``"tokens"``, ``"hidden"`` or ``"tokens+hidden"``), so padding never
    changes the loss; real and imaginary parts are stacked and the squared differences of every stacked element
    of every sequence, summed, are divided by their number (``variant="complex"``), or the same of the magnitudes
    (``variant="magnitude"``, phase-free).

    Vision feature maps ``(N, C, H, W)``: channels are pooled the same way, grids of different size are
    pooled to the smaller one, and ``fft_axis="tokens"`` means ``rfft2`` over ``(H, W)``.

    ``bins`` (band-limited, token tensors with ``fft_axis`` ``"tokens"`` or ``"hidden"`` only): keep only the
    first ``bins`` frequency bins of the one-sided ``rfft`` (the lowest frequencies, DC first) before the
    loss; all bins when the axis has fewer. ``None`` keeps every bin.

    ``normalize="teacher_energy"`` (or ``True``; scale-free): divide the loss by the teacher's spectral energy
    of the pair, ``mean |F(teacher)|²`` over the same kept elements (detached, no gradient), so ``beta``
    means the same whatever the scale of the model's activations. ``None``/``False`` leaves the loss as is.
    """
    normalize = _check_alignment_options(student_hidden, teacher_hidden, fft_axis, variant, bins, normalize)
    if student_hidden.dim() == 3:
        xs, xt, dims = _token_inputs(student_hidden.float(), teacher_hidden.float(), attention_mask, fft_axis)
        groups = _real_token_groups(xs, xt, attention_mask)
    else:
        if attention_mask is not None:
            raise ValueError("attention_mask is only valid for (N, L, D) token tensors, not NCHW feature maps")
        xs, xt, dims = _map_inputs(student_hidden.float(), teacher_hidden.float(), fft_axis)
        groups = [(xs, xt)]

    # sums over every kept element of every group, then one division: the mean over the real tokens' spectra
    total = xs.new_zeros(())
    count, energy, energy_count = 0, xs.new_zeros(()), 0
    for gs, gt in groups:
        fs = torch.fft.rfftn(gs, dim=dims, norm="ortho")
        ft = torch.fft.rfftn(gt, dim=dims, norm="ortho")
        if bins is not None:
            axis = dims[-1]
            keep = min(bins, fs.shape[axis])
            fs, ft = fs.narrow(axis, 0, keep), ft.narrow(axis, 0, keep)
        if variant == "magnitude":
            squared = (fs.abs() - ft.abs()).pow(2)
        else:
            squared = (torch.view_as_real(fs) - torch.view_as_real(ft)).pow(2)
        total, count = total + squared.sum(), count + squared.numel()
        energy, energy_count = energy + ft.detach().abs().pow(2).sum(), energy_count + ft.numel()
    if count == 0:  # no real token in the batch: nothing to align (zero, attached to the graph)
        return xs.sum() * 0.0
    loss = total / count
    if normalize == "teacher_energy":
        energy = energy / energy_count
        loss = loss / energy.clamp_min(torch.finfo(energy.dtype).tiny)
    return loss


def _real_token_groups(xs, xt, attention_mask) -> list:
    """The real tokens of an ``(N, L, D)`` pair, as ``(n, r, D)`` groups of the rows with ``r`` real tokens (in their
    order): each sequence is transformed over its own real tokens, so padding (its amount, its side, the batch's
    longest row) never changes the loss (docs/method.md, step 2). Without a mask every row is real."""
    if attention_mask is None:
        return [(xs, xt)]
    mask = attention_mask.to(xs.device).bool()
    lengths = mask.sum(1).tolist()  # one host sync per call
    if min(lengths) == mask.shape[1]:  # no padding at all: the batch is one group
        return [(xs, xt)]
    # right padding (every row's real tokens first): a slice per group instead of a boolean gather
    right_padded = bool((mask[:, 1:] <= mask[:, :-1]).all()) if mask.shape[1] > 1 else True
    by_length: dict = {}
    for row, length in enumerate(lengths):
        if length:
            by_length.setdefault(length, []).append(row)
    groups, width = [], xs.shape[-1]
    for length, rows in by_length.items():
        index = torch.tensor(rows, device=xs.device)
        gs, gt = xs.index_select(0, index), xt.index_select(0, index)
        if right_padded:
            groups.append((gs[:, :length], gt[:, :length]))
        else:
            real = mask.index_select(0, index)
            groups.append((gs[real].reshape(len(rows), length, width), gt[real].reshape(len(rows), length, width)))
    return groups


def _check_alignment_options(student_hidden, teacher_hidden, fft_axis, variant, bins, normalize):
    """Validate :func:`frequency_alignment_loss`'s options and shapes; returns ``normalize`` resolved."""
    if fft_axis not in FFT_AXES:
        raise ValueError(f"fft_axis={fft_axis!r} is not valid: choose one of {', '.join(FFT_AXES)}")
    if variant not in LOSS_VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid: choose one of {', '.join(LOSS_VARIANTS)}")
    normalize = check_loss_normalize(normalize)
    if bins is not None:
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"bins must be a positive integer or None, got {bins!r}")
        if student_hidden.dim() != 3 or fft_axis == "tokens+hidden":
            raise ValueError(
                "bins (band-limited loss) is defined for (N, L, D) token tensors with fft_axis 'tokens' or 'hidden' "
                f"only, got a {student_hidden.dim()}-D input with fft_axis={fft_axis!r}"
            )
    if student_hidden.dim() != teacher_hidden.dim() or student_hidden.dim() not in (3, 4):
        raise ValueError(
            "student and teacher features must both be (N, L, D) token tensors or both (N, C, H, W) feature "
            f"maps, got shapes {tuple(student_hidden.shape)} and {tuple(teacher_hidden.shape)}"
        )
    if student_hidden.shape[0] != teacher_hidden.shape[0]:
        raise ValueError(f"batch sizes differ: student {student_hidden.shape[0]}, teacher {teacher_hidden.shape[0]}")
    return normalize


def _token_inputs(xs, xt, attention_mask, fft_axis):
    """(N, L, D) pair: widths pooled to the narrower, padding zeroed; returns the tensors and the FFT dims."""
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(
            f"sequence lengths differ (student {xs.shape[1]}, teacher {xt.shape[1]}): the token-axis alignment "
            "needs the same tokenization for teacher and student"
        )
    width = min(xs.shape[2], xt.shape[2])
    xs, xt = _pool_width(xs, width, 2), _pool_width(xt, width, 2)
    if attention_mask is not None:
        if tuple(attention_mask.shape) != tuple(xs.shape[:2]):  # a wrong shape would broadcast silently
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but the hidden states are "
                f"{tuple(xs.shape)}: it must be (batch, tokens) = {tuple(xs.shape[:2])}"
            )
        mask = attention_mask.to(device=xs.device, dtype=xs.dtype).unsqueeze(-1)
        xs, xt = xs * mask, xt * mask
    return xs, xt, {"tokens": (1,), "hidden": (2,), "tokens+hidden": (1, 2)}[fft_axis]


def _map_inputs(xs, xt, fft_axis):
    """(N, C, H, W) pair: channels pooled to the fewer, grids pooled to the smaller; returns tensors and dims."""
    channels = min(xs.shape[1], xt.shape[1])
    xs, xt = _pool_width(xs, channels, 1), _pool_width(xt, channels, 1)
    grid = (min(xs.shape[2], xt.shape[2]), min(xs.shape[3], xt.shape[3]))
    if tuple(xs.shape[2:]) != grid:
        xs = F.adaptive_avg_pool2d(xs, grid)
    if tuple(xt.shape[2:]) != grid:
        xt = F.adaptive_avg_pool2d(xt, grid)
    return xs, xt, {"tokens": (2, 3), "hidden": (1,), "tokens+hidden": (1, 2, 3)}[fft_axis]


def check_loss_normalize(normalize):
    """``True`` -> ``"teacher_energy"``; ``None``/``False`` -> ``None``; anything else must be a known name."""
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return "teacher_energy"
    if isinstance(normalize, str) and normalize in LOSS_NORMALIZATIONS:
        return normalize
    raise ValueError(
        f"normalize={normalize!r} is not valid: choose None/False (off), True or one of "
        f"{', '.join(LOSS_NORMALIZATIONS)}"
    )
