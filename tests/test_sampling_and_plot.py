"""Streaming layer selection samples through a seeded shuffle buffer (not the first N rows of a sorted stream), and
the layer-intensity graph's axis starts at 0 with the spread printed."""

import torch
from datasets import Dataset

from hf_spectralkd.sampling import SHUFFLE_BUFFER, sample_dataset


def sorted_rows(n=2000, classes=20):
    return [{"input_ids": [i], "labels": i * classes // n} for i in range(n)]  # sorted by label, as CLINC150's file


def test_a_streaming_dataset_is_sampled_through_a_seeded_buffer():
    rows = sorted_rows()
    stream = Dataset.from_list(rows).to_iterable_dataset()
    first = sample_dataset(stream, 100, seed=0)
    again = sample_dataset(stream, 100, seed=0)
    other = sample_dataset(stream, 100, seed=1)
    assert len(first) == 100 and first == again and first != other
    assert len({r["labels"] for r in first}) >= 15  # the first 100 rows hold one class only
    assert len({r["labels"] for r in rows[:100]}) == 1


def test_a_torch_iterable_dataset_is_sampled_from_its_buffer():
    rows = sorted_rows()

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(rows)

    sample = sample_dataset(Stream(), 100, seed=0)
    assert len(sample) == 100 and len({r["labels"] for r in sample}) >= 15
    assert sample == sample_dataset(Stream(), 100, seed=0)
    assert SHUFFLE_BUFFER >= 100


def test_the_intensity_plot_axis_starts_at_zero_and_prints_the_spread(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hf_spectralkd.analysis import plot_layer_intensity
    from hf_spectralkd.spectral import SpectralProfile

    captured = {}
    real_savefig = plt.Figure.savefig

    def savefig(self, path, *args, **kwargs):
        ax = self.axes[0]
        captured["ylim"] = ax.get_ylim()
        captured["texts"] = [t.get_text() for t in ax.texts]
        return real_savefig(self, path, *args, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", savefig)
    torch.manual_seed(0)
    scales = [1.0, 1.25, 1.2, 1.2, 1.3, 1.15, 0.9]  # close intensities: a truncated axis would exaggerate them
    profile = SpectralProfile().update([scale * torch.randn(2, 5, 8) for scale in scales])
    intensity = profile.intensity.tolist()
    path = plot_layer_intensity(profile, str(tmp_path / "plot.png"), selected=[4, 5, 6])
    assert (tmp_path / "plot.png").stat().st_size > 0 and path.endswith("plot.png")
    assert captured["ylim"][0] == 0.0 and captured["ylim"][1] > max(intensity)
    spread = 100 * (max(intensity) - min(intensity)) / max(intensity)
    assert any(f"spread {spread:.1f} % of the max" in text for text in captured["texts"]), captured["texts"]
