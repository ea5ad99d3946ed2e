"""The spectral math of hf_spectralkd against an independent numpy reference of docs/method.md (the normative math).

The references below are written from the definitions, not from the implementation: the intensity uses
the full DFT (``numpy.fft.fft``) over the hidden axis, the loss uses ``numpy.fft.rfft``/``rfftn``.
"""

import json
import math

import numpy as np
import pytest
import torch

from hf_spectralkd import (
    SpectralProfile,
    frequency_alignment_loss,
    select_layers,
    spectral_intensity,
    spectral_spectrum,
)


# ---------------------------------------------------------------------------------------------- references
def ref_spectrum(x, mask=None):
    """S[k] = Σ_{n,t} M·|(1/D)·DFT_c(X)[n,t,k]| / Σ M, all D bins (docs/method.md, "Spectral intensity", steps 1-2)."""
    x = np.asarray(x, dtype=np.float64)
    n, length, d = x.shape
    m = np.ones((n, length)) if mask is None else np.asarray(mask, dtype=np.float64)
    magnitude = np.abs(np.fft.fft(x, axis=-1) / d)
    return (m[..., None] * magnitude).sum(axis=(0, 1)) / m.sum()


def ref_intensity(x, mask=None):
    return ref_spectrum(x, mask).mean()  # step 3: mean over all D bins


def ref_adaptive_pool(x, width, axis):
    """Adaptive average pooling along ``axis`` (bin i averages [floor(i·D/W), ceil((i+1)·D/W)))."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    d = x.shape[-1]
    out = np.stack([x[..., (i * d) // width : -((-(i + 1) * d) // width)].mean(-1) for i in range(width)], axis=-1)
    return np.moveaxis(out, -1, axis)


def ref_group_mean(x, width, axis):
    """Pooling when the width divides: plain group means (an even simpler reference)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    out = x.reshape(*x.shape[:-1], width, x.shape[-1] // width).mean(-1)
    return np.moveaxis(out, -1, axis)


def ref_mse(fs, ft, variant):
    if variant == "magnitude":
        return np.mean((np.abs(fs) - np.abs(ft)) ** 2)
    stacked_s = np.stack([fs.real, fs.imag], axis=-1)
    stacked_t = np.stack([ft.real, ft.imag], axis=-1)
    return np.mean((stacked_s - stacked_t) ** 2)


def ref_freq_loss(xs, xt, mask=None, fft_axis="tokens", variant="complex", pool=ref_adaptive_pool):
    """Token tensors (N, L, D): pool the wider hidden axis; each sequence's real tokens alone, rfft (ortho) over
    the axis; the squared differences of every stacked element of every sequence, summed, over their count
    (docs/method.md: padding never enters). Written as a loop over sequences."""
    xs, xt = np.asarray(xs, dtype=np.float64), np.asarray(xt, dtype=np.float64)
    width = min(xs.shape[2], xt.shape[2])
    if xs.shape[2] != width:
        xs = pool(xs, width, 2)
    if xt.shape[2] != width:
        xt = pool(xt, width, 2)
    m = np.ones(xs.shape[:2], dtype=bool) if mask is None else np.asarray(mask).astype(bool)
    axes = {"tokens": (0,), "hidden": (1,), "tokens+hidden": (0, 1)}[fft_axis]
    total, count = 0.0, 0
    for i in range(xs.shape[0]):
        if not m[i].any():
            continue
        fs = np.fft.rfftn(xs[i][m[i]], axes=axes, norm="ortho")
        ft = np.fft.rfftn(xt[i][m[i]], axes=axes, norm="ortho")
        if variant == "magnitude":
            squared = (np.abs(fs) - np.abs(ft)) ** 2
        else:
            squared = (np.stack([fs.real, fs.imag], -1) - np.stack([ft.real, ft.imag], -1)) ** 2
        total, count = total + squared.sum(), count + squared.size
    return total / count


def ref_freq_loss_nchw(xs, xt, fft_axis="tokens", variant="complex"):
    """Feature maps (N, C, H, W): channel pooling, grid pooled to the smaller (divisible here), rfft2."""
    xs, xt = np.asarray(xs, dtype=np.float64), np.asarray(xt, dtype=np.float64)
    channels = min(xs.shape[1], xt.shape[1])
    xs, xt = ref_group_mean(xs, channels, 1), ref_group_mean(xt, channels, 1)
    for axis in (2, 3):
        size = min(xs.shape[axis], xt.shape[axis])
        xs, xt = ref_group_mean(xs, size, axis), ref_group_mean(xt, size, axis)
    axes = {"tokens": (2, 3), "hidden": (1,), "tokens+hidden": (1, 2, 3)}[fft_axis]
    fs = np.fft.rfftn(xs, axes=axes, norm="ortho")
    ft = np.fft.rfftn(xt, axes=axes, norm="ortho")
    return ref_mse(fs, ft, variant)


# ---------------------------------------------------------------------------------------------- data
def padded_batch(n=3, length=7, d=10, seed=0, lengths=None):
    """Random hidden states with right padding; the padded positions hold large garbage on purpose."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, d, generator=g)
    lengths = lengths or [length - (i % 3) * 2 for i in range(n)]
    mask = torch.zeros(n, length, dtype=torch.long)
    for i, real in enumerate(lengths):
        mask[i, :real] = 1
    x = torch.where(mask.bool().unsqueeze(-1), x, 50.0 + 10 * torch.randn(n, length, d, generator=g))
    return x, mask


def scramble_padding(x, mask, seed=123):
    g = torch.Generator().manual_seed(seed)
    garbage = 1000.0 * torch.randn(x.shape, generator=g)
    return torch.where(mask.bool().unsqueeze(-1), x, garbage)


# ---------------------------------------------------------------------------------------------- intensity
@pytest.mark.parametrize("d", [10, 7, 1, 2])
def test_intensity_and_spectrum_match_full_dft_reference(d):
    layers = [padded_batch(d=d, seed=s) for s in range(3)]
    mask = layers[0][1]
    hidden = [x for x, _ in layers]
    got = spectral_intensity(hidden, mask)
    assert got.dtype == torch.float32 and got.shape == (3,)
    want = [ref_intensity(x.numpy(), mask.numpy()) for x in hidden]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-7)
    spectra = spectral_spectrum(hidden, mask)
    for spectrum, x in zip(spectra, hidden, strict=True):
        assert spectrum.shape == (d,)  # all D bins, not only the one-sided half
        np.testing.assert_allclose(spectrum.numpy(), ref_spectrum(x.numpy(), mask.numpy()), rtol=1e-5, atol=1e-7)


def test_intensity_without_mask_uses_every_token():
    x, _ = padded_batch()
    np.testing.assert_allclose(spectral_intensity([x]).numpy(), [ref_intensity(x.numpy())], rtol=1e-5)


def test_padded_positions_do_not_change_intensity():
    x, mask = padded_batch(d=12)
    a = spectral_intensity([x], mask)
    b = spectral_intensity([scramble_padding(x, mask)], mask)
    assert torch.equal(a, b)
    # and the padded garbage would matter if it were counted
    assert not torch.allclose(spectral_intensity([x]), a)


def test_intensity_of_nchw_map_uses_positions_as_tokens_and_channels_as_hidden():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, 4, generator=g)  # N, C, H, W
    tokens = x.reshape(2, 6, 12).transpose(1, 2).numpy()  # (N, H*W, C)
    np.testing.assert_allclose(spectral_intensity([x]).numpy(), [ref_intensity(tokens)], rtol=1e-5)


def test_intensity_mask_selecting_nothing_is_an_error():
    x, mask = padded_batch()
    with pytest.raises(ValueError, match="selects no token"):
        spectral_intensity([x], torch.zeros_like(mask))


# ---------------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("fft_axis", ["tokens", "hidden", "tokens+hidden"])
@pytest.mark.parametrize("variant", ["complex", "magnitude"])
def test_loss_matches_numpy_reference(fft_axis, variant):
    xs, mask = padded_batch(n=4, length=9, d=8, seed=1)
    xt, _ = padded_batch(n=4, length=9, d=8, seed=2)
    got = frequency_alignment_loss(xs, xt, mask, fft_axis=fft_axis, variant=variant)
    assert got.dtype == torch.float32 and got.dim() == 0
    want = ref_freq_loss(xs.numpy(), xt.numpy(), mask.numpy(), fft_axis, variant)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_loss_default_is_tokens_complex_and_counts_real_stacked_elements():
    xs, mask = padded_batch(n=2, length=6, d=4, seed=3, lengths=[6, 4])
    xt, _ = padded_batch(n=2, length=6, d=4, seed=4, lengths=[6, 4])
    got = frequency_alignment_loss(xs, xt, mask)
    # each sequence over its own real tokens: (6//2+1) + (4//2+1) bins × D × 2 elements (docs/method.md, step 4)
    diffs = []
    for i, real in enumerate([6, 4]):
        fs = np.fft.rfft(xs.numpy()[i, :real], axis=0, norm="ortho")
        ft = np.fft.rfft(xt.numpy()[i, :real], axis=0, norm="ortho")
        diffs.append(np.concatenate([(fs - ft).real.ravel(), (fs - ft).imag.ravel()]))
    diff = np.concatenate(diffs)
    assert diff.size == ((6 // 2 + 1) + (4 // 2 + 1)) * 4 * 2
    np.testing.assert_allclose(float(got), (diff**2).sum() / diff.size, rtol=1e-5)


@pytest.mark.parametrize("fft_axis", ["tokens", "hidden", "tokens+hidden"])
@pytest.mark.parametrize("variant", ["complex", "magnitude"])
def test_the_padded_length_does_not_change_the_loss(fft_axis, variant):
    """The same 3 sequences padded to their longest row, to 32 and to 128 (and left-padded): one value."""
    g = torch.Generator().manual_seed(7)
    lengths = [5, 9, 3]
    rows_s = [torch.randn(n, 6, generator=g) for n in lengths]
    rows_t = [torch.randn(n, 6, generator=g) for n in lengths]

    def pad(rows, length, left=False):
        x = 50.0 * torch.ones(len(rows), length, 6)  # garbage in the padding
        mask = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(length - len(row), length) if left else slice(0, len(row))
            x[i, span], mask[i, span] = row, 1
        return x, mask

    values = []
    for length, left in ((9, False), (32, False), (128, False), (32, True)):
        xs, mask = pad(rows_s, length, left)
        xt, _ = pad(rows_t, length, left)
        values.append(float(frequency_alignment_loss(xs, xt, mask, fft_axis=fft_axis, variant=variant)))
    np.testing.assert_allclose(values, values[0], rtol=1e-5)


def test_accumulated_halves_equal_the_whole_batch_on_equal_length_rows():
    """Gradient accumulation 2 x 4 = 1 x 8: on equal-length rows the loss is a mean over rows."""
    g = torch.Generator().manual_seed(8)
    xs, xt = torch.randn(8, 7, 6, generator=g), torch.randn(8, 7, 6, generator=g)
    mask = torch.ones(8, 7, dtype=torch.long)
    whole = float(frequency_alignment_loss(xs, xt, mask))
    halves = [float(frequency_alignment_loss(xs[i:i + 4], xt[i:i + 4], mask[i:i + 4])) for i in (0, 4)]
    assert np.mean(halves) == pytest.approx(whole, rel=1e-6)


@pytest.mark.parametrize("fft_axis", ["tokens", "hidden", "tokens+hidden"])
def test_loss_is_zero_for_identical_inputs(fft_axis):
    x, mask = padded_batch(d=6)
    assert float(frequency_alignment_loss(x, x.clone(), mask, fft_axis=fft_axis)) == 0.0
    assert float(frequency_alignment_loss(x, x.clone(), mask, fft_axis=fft_axis, variant="magnitude")) == 0.0


@pytest.mark.parametrize("variant", ["complex", "magnitude"])
def test_padded_positions_do_not_change_loss(variant):
    xs, mask = padded_batch(n=3, length=8, d=6, seed=5)
    xt, _ = padded_batch(n=3, length=8, d=12, seed=6)  # teacher wider: pooling must not leak padding either
    a = frequency_alignment_loss(xs, xt, mask, variant=variant)
    b = frequency_alignment_loss(scramble_padding(xs, mask, 1), scramble_padding(xt, mask, 2), mask, variant=variant)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(a, frequency_alignment_loss(xs, xt, None, variant=variant))


@pytest.mark.parametrize("wide", ["teacher", "student"])
def test_width_pooling_both_ways_matches_group_means(wide):
    narrow, mask = padded_batch(n=2, length=6, d=4, seed=7)
    wider, _ = padded_batch(n=2, length=6, d=12, seed=8)
    xs, xt = (narrow, wider) if wide == "teacher" else (wider, narrow)
    got = float(frequency_alignment_loss(xs, xt, mask))
    np.testing.assert_allclose(
        got, ref_freq_loss(xs.numpy(), xt.numpy(), mask.numpy(), pool=ref_group_mean), rtol=1e-5
    )
    np.testing.assert_allclose(
        got, ref_freq_loss(xs.numpy(), xt.numpy(), mask.numpy(), pool=ref_adaptive_pool), rtol=1e-5
    )
    # a wider tensor that repeats each value of the narrow one pools back to it exactly: zero loss
    repeated = narrow.repeat_interleave(3, dim=-1)
    pair = (narrow, repeated) if wide == "teacher" else (repeated, narrow)
    assert float(frequency_alignment_loss(*pair, mask)) == pytest.approx(0.0, abs=1e-12)


def test_width_pooling_when_width_does_not_divide():
    xs, mask = padded_batch(n=2, length=5, d=5, seed=9)
    xt, _ = padded_batch(n=2, length=5, d=7, seed=10)
    np.testing.assert_allclose(
        float(frequency_alignment_loss(xs, xt, mask)), ref_freq_loss(xs.numpy(), xt.numpy(), mask.numpy()), rtol=1e-5
    )


@pytest.mark.parametrize("fft_axis", ["tokens", "hidden", "tokens+hidden"])
@pytest.mark.parametrize("variant", ["complex", "magnitude"])
def test_nchw_loss_matches_numpy_rfft2_with_channel_and_grid_pooling(fft_axis, variant):
    g = torch.Generator().manual_seed(11)
    student = torch.randn(2, 4, 4, 4, generator=g)  # smaller grid, fewer channels
    teacher = torch.randn(2, 8, 8, 8, generator=g)
    got = frequency_alignment_loss(student, teacher, fft_axis=fft_axis, variant=variant)
    want = ref_freq_loss_nchw(student.numpy(), teacher.numpy(), fft_axis, variant)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # pooling is symmetric in who is larger
    got_swapped = frequency_alignment_loss(teacher, student, fft_axis=fft_axis, variant=variant)
    np.testing.assert_allclose(float(got_swapped), want, rtol=1e-5)


def test_nchw_same_shapes_is_plain_rfft2():
    g = torch.Generator().manual_seed(12)
    a, b = torch.randn(3, 5, 6, 6, generator=g), torch.randn(3, 5, 6, 6, generator=g)
    fa = np.fft.rfft2(a.numpy().astype(np.float64), norm="ortho")  # rfft2 = last two axes (H, W)
    fb = np.fft.rfft2(b.numpy().astype(np.float64), norm="ortho")
    np.testing.assert_allclose(float(frequency_alignment_loss(a, b)), ref_mse(fa, fb, "complex"), rtol=1e-5)
    assert float(frequency_alignment_loss(a, a.clone())) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_give_float32_finite_results(dtype):
    xs, mask = padded_batch(n=2, length=10, d=12, seed=13)
    xt, _ = padded_batch(n=2, length=10, d=24, seed=14)
    xs, xt = xs * mask.unsqueeze(-1), xt * mask.unsqueeze(-1)  # half precision cannot hold the big garbage well
    hs, ht = xs.to(dtype), xt.to(dtype)
    loss = frequency_alignment_loss(hs, ht, mask)
    intensity = spectral_intensity([hs, ht], mask)
    assert loss.dtype == torch.float32 and intensity.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(intensity).all()
    # computed in float32 from the rounded inputs: equal to the reference on those inputs
    np.testing.assert_allclose(
        float(loss), ref_freq_loss(hs.float().numpy(), ht.float().numpy(), mask.numpy()), rtol=1e-4
    )
    np.testing.assert_allclose(
        intensity.numpy(),
        [ref_intensity(hs.float().numpy(), mask.numpy()), ref_intensity(ht.float().numpy(), mask.numpy())],
        rtol=1e-4,
    )
    nchw = frequency_alignment_loss(torch.randn(2, 4, 6, 6).to(dtype), torch.randn(2, 8, 3, 3).to(dtype))
    assert nchw.dtype == torch.float32 and torch.isfinite(nchw)


def test_loss_gradient_flows_to_student_only_through_float32():
    xs, mask = padded_batch(n=2, length=6, d=4, seed=15)
    xt, _ = padded_batch(n=2, length=6, d=8, seed=16)
    xs = xs.clone().requires_grad_(True)
    frequency_alignment_loss(xs, xt, mask).backward()
    assert torch.isfinite(xs.grad).all()
    # padded positions are zeroed before the transform: they get no gradient
    assert float(xs.grad[~mask.bool()].abs().sum()) == 0.0
    assert float(xs.grad[mask.bool()].abs().sum()) > 0.0


def test_loss_input_errors():
    x, mask = padded_batch()
    with pytest.raises(
        ValueError, match="fft_axis='space' is not valid: choose one of tokens, hidden, tokens\\+hidden"
    ):
        frequency_alignment_loss(x, x, mask, fft_axis="space")
    with pytest.raises(ValueError, match="variant='phase' is not valid"):
        frequency_alignment_loss(x, x, mask, variant="phase")
    with pytest.raises(ValueError, match="sequence lengths differ"):
        frequency_alignment_loss(x, x[:, :-1], None)
    with pytest.raises(ValueError, match="both be \\(N, L, D\\) token tensors or both \\(N, C, H, W\\)"):
        frequency_alignment_loss(x, x.unsqueeze(-1), None)


# ---------------------------------------------------------------------------------------------- profile
def make_batches(num_batches=4, layers=3, d=8, seed=20):
    """Batches of different lengths (dynamic padding), like a padded dataloader produces."""
    batches = []
    for b in range(num_batches):
        length = 5 + b
        xs = [padded_batch(n=3, length=length, d=d, seed=seed + 10 * b + layer)[0] for layer in range(layers)]
        mask = padded_batch(n=3, length=length, d=d, seed=seed + 10 * b)[1]
        batches.append((xs, mask))
    return batches


def test_profile_streaming_equals_one_shot_reference():
    batches = make_batches()
    profile = SpectralProfile()
    for hidden, mask in batches:
        profile.update(hidden, mask)
    assert profile.num_samples == 12 and profile.num_layers == 3
    # one shot: every real token of every batch, in one numpy computation per layer
    for layer in range(3):
        tokens = np.concatenate([h[layer].numpy()[m.numpy().astype(bool)] for h, m in batches])  # (T, D)
        spectrum = ref_spectrum(tokens[None])
        np.testing.assert_allclose(profile.spectra[layer].numpy(), spectrum, rtol=1e-5)
        np.testing.assert_allclose(float(profile.intensity[layer]), spectrum.mean(), rtol=1e-5)
    # and the same numbers as spectral_intensity on one big padded batch
    max_len = max(m.shape[1] for _, m in batches)
    pad = lambda t: torch.nn.functional.pad(t, (0, 0, 0, max_len - t.shape[1]))  # noqa: E731
    big_mask = torch.cat([torch.nn.functional.pad(m, (0, max_len - m.shape[1])) for _, m in batches])
    one_shot = spectral_intensity([torch.cat([pad(h[layer]) for h, _ in batches]) for layer in range(3)], big_mask)
    torch.testing.assert_close(profile.intensity, one_shot, rtol=1e-5, atol=1e-7)


def test_profile_state_size_does_not_grow_with_batches():
    def state_size(profile):
        return sum(s.numel() for s in profile.spectrum_sums) + len(profile.token_counts)

    one, many = SpectralProfile(), SpectralProfile()
    batches = make_batches(num_batches=12)
    one.update(*batches[0])
    for hidden, mask in batches:
        many.update(hidden, mask)
    assert state_size(one) == state_size(many) == 3 * 8 + 3
    assert len(json.dumps(one.to_dict()["spectrum_sums"])) > 0
    assert len(many.to_dict()["spectra"]) == 3


def test_profile_json_round_trip(tmp_path):
    profile = SpectralProfile(metadata={"model": "tiny"})
    for hidden, mask in make_batches():
        profile.update(hidden, mask)
    path = profile.save(tmp_path / "sub" / "spectral_profile.json")
    data = json.loads(open(path).read())
    assert data["format"] == "hf_spectralkd.SpectralProfile/1"
    assert data["intensity"] == pytest.approx(profile.intensity.tolist(), rel=1e-6)
    loaded = SpectralProfile.load(path)
    assert loaded.num_samples == profile.num_samples and loaded.metadata == {"model": "tiny"}
    torch.testing.assert_close(loaded.intensity, profile.intensity)
    for a, b in zip(loaded.spectra, profile.spectra, strict=True):
        torch.testing.assert_close(a, b)
    # streaming can continue from a loaded profile
    extra = make_batches(num_batches=1, seed=99)[0]
    loaded.update(*extra)
    profile.update(*extra)
    torch.testing.assert_close(loaded.intensity, profile.intensity)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a spectral profile"):
        SpectralProfile.load(tmp_path / "bad.json")


def test_profile_errors():
    profile = SpectralProfile()
    with pytest.raises(ValueError, match="profile is empty"):
        _ = profile.intensity
    hidden, mask = make_batches(num_batches=1)[0]
    profile.update(hidden, mask)
    with pytest.raises(ValueError, match="this profile has 3 layers but the batch has 2"):
        profile.update(hidden[:2], mask)


# ---------------------------------------------------------------------------------------------- selection
def test_topk_returns_highest_blocks_in_ascending_order():
    intensity = [9.0, 0.1, 0.5, 0.3, 0.6, 0.2]  # embeddings are the highest but excluded by default
    assert select_layers(intensity, 2) == [2, 4]
    assert select_layers(torch.tensor(intensity), 3, "topk") == [2, 3, 4]
    assert select_layers(intensity, 2, include_embeddings=True) == [0, 4]


def test_topk_ties_go_to_the_lower_index():
    assert select_layers([0.0, 0.5, 0.5, 0.5, 0.5], 2) == [1, 2]
    assert select_layers([0.0, 0.1, 0.7, 0.3, 0.7, 0.7], 2) == [2, 4]


def test_uniform_is_evenly_spaced_ending_at_last_block():
    six = [0.0] * 7  # embeddings + 6 blocks
    assert select_layers(six, 3, "uniform") == [2, 4, 6]
    assert select_layers(six, 2, "uniform") == [3, 6]
    assert select_layers(six, 6, "uniform") == [1, 2, 3, 4, 5, 6]
    assert select_layers([0.0] * 25, 12, "uniform") == list(range(2, 25, 2))  # RoBERTa-large, every 2nd layer


def test_ends_picks_best_first_a_plus_last_b():
    intensity = [0.0, 5, 1, 1, 1, 1, 1, 4, 6]  # 8 blocks
    # a=3: 7, a=2/b=1: 12, a=1/b=2: 15, a=0/b=3: 11
    assert select_layers(intensity, 3, "ends") == [1, 7, 8]
    # a=3: 11, a=2/b=1: 15, a=1/b=2: 7, a=0/b=3: 7
    assert select_layers([0.0, 1, 9, 1, 1, 1, 1, 1, 5], 3, "ends") == [1, 2, 8]
    # a=3 and a=2/b=1 both total 11: the lower indices win
    assert select_layers([0.0, 1, 9, 1, 1, 1, 1, 1, 1], 3, "ends") == [1, 2, 3]
    # ties: more leading layers (lower indices) win
    assert select_layers([0.0] + [1.0] * 8, 3, "ends") == [1, 2, 3]


def test_selection_is_deterministic():
    g = torch.Generator().manual_seed(0)
    intensity = torch.rand(13, generator=g)
    for strategy in ("topk", "ends", "uniform"):
        assert select_layers(intensity, 5, strategy) == select_layers(intensity.clone(), 5, strategy)


def test_explicit_layer_lists():
    intensity = [0.0] * 7
    assert select_layers(intensity, 3, [6, 2, 4]) == [6, 2, 4]  # the user's pairing order is kept
    assert select_layers(intensity, None, [1, 3]) == [1, 3]
    assert select_layers(intensity, 2, [0, 3], include_embeddings=True) == [0, 3]
    with pytest.raises(ValueError, match=r"explicit layers \[7\] are out of range: valid indices are 1\.\.6"):
        select_layers(intensity, 2, [1, 7])
    with pytest.raises(
        ValueError,
        match=r"explicit layers \[0\] are out of range: valid indices are 1\.\.6 \(index 0 = embeddings is excluded\)",
    ):
        select_layers(intensity, 2, [0, 3])
    with pytest.raises(ValueError, match="has 2 entries, expected k=3"):
        select_layers(intensity, 3, [1, 3])
    with pytest.raises(ValueError, match="duplicates"):
        select_layers(intensity, 2, [3, 3])


def test_selection_errors():
    with pytest.raises(ValueError, match=r"cannot select k=7 layers: only 6 candidate layers \(1\.\.6\)"):
        select_layers([0.0] * 7, 7)
    assert select_layers([0.0] * 7, 7, include_embeddings=True) == list(range(7))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        select_layers([0.0] * 7, 0)
    with pytest.raises(ValueError, match="unknown selection strategy 'best'"):
        select_layers([0.0] * 7, 2, "best")
    with pytest.raises(ValueError, match="NaN"):
        select_layers([0.0, math.nan, 1.0], 1)


# --------------------------------------------------------------------------------------------------
# Band-limited (bins) and scale-free (normalize) frequency terms, against hand-computed values.
# Student x_s = [1, 0, 0, 0], teacher x_t = [1, 1, 1, 1] (N=1, L=4, D=1). rfft with norm="ortho":
#   F(x_s) = [0.5, 0.5, 0.5] (every bin 1/sqrt(4)),  F(x_t) = [2, 0, 0] (4/sqrt(4) at DC).
# complex, all bins: ((0.5-2)² + 0.5² + 0.5² + 3 zero imaginary parts) / 6 = 2.75 / 6
# teacher energy over all 3 bins: (4 + 0 + 0) / 3 = 4/3
# --------------------------------------------------------------------------------------------------
def _hand_pair():
    xs = torch.tensor([1.0, 0.0, 0.0, 0.0]).reshape(1, 4, 1)
    xt = torch.tensor([1.0, 1.0, 1.0, 1.0]).reshape(1, 4, 1)
    return xs, xt


@pytest.mark.parametrize(
    "variant, bins, normalize, want",
    [
        ("complex", None, None, 2.75 / 6),
        ("complex", 1, None, 2.25 / 2),  # DC only: real part (0.5-2)², imaginary 0
        ("complex", 2, None, (2.25 + 0.25) / 4),
        ("complex", 99, None, 2.75 / 6),  # more bins than the axis has: all of them
        ("complex", None, "teacher_energy", (2.75 / 6) / (4 / 3)),
        ("complex", None, True, (2.75 / 6) / (4 / 3)),
        ("complex", 1, "teacher_energy", (2.25 / 2) / 4),  # energy over the kept bin only
        ("magnitude", None, None, (2.25 + 0.25 + 0.25) / 3),
        ("magnitude", 2, None, (2.25 + 0.25) / 2),
        ("magnitude", 2, "teacher_energy", ((2.25 + 0.25) / 2) / (4 / 2)),
    ],
)
def test_band_limited_and_scale_free_loss_hand_computed(variant, bins, normalize, want):
    xs, xt = _hand_pair()
    got = frequency_alignment_loss(xs, xt, variant=variant, bins=bins, normalize=normalize)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(float(got), want, rtol=1e-6)


def test_new_options_off_are_bit_identical_to_the_default():
    xs, mask = padded_batch(n=3, length=7, d=5, seed=11)
    xt, _ = padded_batch(n=3, length=7, d=5, seed=12)
    for variant in ("complex", "magnitude"):
        base = frequency_alignment_loss(xs, xt, mask, variant=variant)
        assert torch.equal(frequency_alignment_loss(xs, xt, mask, variant=variant, bins=None, normalize=None), base)
        assert torch.equal(frequency_alignment_loss(xs, xt, mask, variant=variant, normalize=False), base)


def test_band_limited_loss_matches_numpy_on_a_padded_batch():
    xs, mask = padded_batch(n=2, length=9, d=6, seed=5, lengths=[9, 7])
    xt, _ = padded_batch(n=2, length=9, d=6, seed=6, lengths=[9, 7])

    def spectra(axis, keep):
        pairs = []
        for i, real in enumerate([9, 7]):
            fs = np.fft.rfft(xs.numpy()[i, :real], axis=axis, norm="ortho")
            ft = np.fft.rfft(xt.numpy()[i, :real], axis=axis, norm="ortho")
            index = [slice(None), slice(None)]
            index[axis] = slice(0, keep)
            pairs.append((fs[tuple(index)], ft[tuple(index)]))
        return pairs

    pairs = spectra(0, 3)  # tokens: the first 3 bins of each sequence's own rfft
    want = sum((np.abs(fs - ft) ** 2).sum() for fs, ft in pairs) / sum(fs.size * 2 for fs, _ in pairs)
    got = frequency_alignment_loss(xs, xt, mask, bins=3)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    energy = sum((np.abs(ft) ** 2).sum() for _, ft in pairs) / sum(ft.size for _, ft in pairs)
    got = frequency_alignment_loss(xs, xt, mask, bins=3, normalize="teacher_energy")
    np.testing.assert_allclose(float(got), want / energy, rtol=1e-5)
    # hidden axis: the first 2 of D//2+1 = 4 bins, real tokens only
    pairs = spectra(1, 2)
    want = sum((np.abs(fs - ft) ** 2).sum() for fs, ft in pairs) / sum(fs.size * 2 for fs, _ in pairs)
    got = frequency_alignment_loss(xs, xt, mask, fft_axis="hidden", bins=2)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_scale_free_loss_is_invariant_to_a_common_scale_and_teacher_energy_is_detached():
    xs, mask = padded_batch(n=2, length=6, d=4, seed=7)
    xt, _ = padded_batch(n=2, length=6, d=4, seed=8)
    a = frequency_alignment_loss(xs, xt, mask, normalize="teacher_energy")
    b = frequency_alignment_loss(10 * xs, 10 * xt, mask, normalize="teacher_energy")
    np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
    xt = xt.clone().requires_grad_(True)
    frequency_alignment_loss(xs, xt, mask, normalize="teacher_energy").backward()
    # the teacher gets a gradient only through the difference term, not through its energy (detached):
    # with the energy detached, d/dxt = -d/dxs for the complex variant
    xs2 = xs.clone().requires_grad_(True)
    frequency_alignment_loss(xs2, xt.detach(), mask, normalize="teacher_energy").backward()
    torch.testing.assert_close(xt.grad, -xs2.grad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(bins=0), "bins must be a positive integer"),
        (dict(bins=True), "bins must be a positive integer"),
        (dict(bins=2.0), "bins must be a positive integer"),
        (dict(bins=2, fft_axis="tokens+hidden"), "fft_axis 'tokens' or 'hidden'"),
        (dict(normalize="energy"), "normalize='energy' is not valid"),
    ],
)
def test_band_limited_and_scale_free_input_errors(kwargs, match):
    xs, xt = _hand_pair()
    with pytest.raises(ValueError, match=match):
        frequency_alignment_loss(xs, xt, **kwargs)


def test_bins_on_vision_feature_maps_is_an_error():
    with pytest.raises(ValueError, match="token tensors"):
        frequency_alignment_loss(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), bins=2)


def test_config_fields_for_band_limited_and_scale_free(tmp_path):
    from hf_spectralkd import SpectralDistillationConfig

    def make(**kw):
        return SpectralDistillationConfig(output_dir=str(tmp_path / "out"), report_to="none", **kw)

    default = make()
    assert default.freq_loss_normalize is None and default.freq_bins is None
    assert make(freq_loss_normalize=True).freq_loss_normalize == "teacher_energy"
    assert make(freq_loss_normalize=False).freq_loss_normalize is None
    assert make(freq_loss_normalize="teacher_energy").freq_loss_normalize == "teacher_energy"
    assert make(freq_bins=4).freq_bins == 4
    for bad, match in [
        (dict(freq_loss_normalize="energy"), "freq_loss_normalize must be"),
        (dict(freq_bins=0), "freq_bins must be a positive integer"),
        (dict(freq_bins=True), "freq_bins must be a positive integer"),
        (dict(freq_bins=4, fft_axis="tokens+hidden"), "freq_bins needs fft_axis"),
    ]:
        with pytest.raises(ValueError, match=match):
            make(**bad)


def test_attention_mask_of_the_wrong_shape_is_an_error():
    hidden = torch.randn(2, 5, 4)
    expected = r"attention_mask has shape \(2, 5, 5\).*must be \(batch, tokens\) = \(2, 5\)"
    with pytest.raises(ValueError, match=expected):
        frequency_alignment_loss(hidden, hidden, torch.ones(2, 5, 5))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(5,\)"):
        frequency_alignment_loss(hidden, hidden, torch.ones(5))
