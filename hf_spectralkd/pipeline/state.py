"""What a run directory guarantees: which folders are the run's own, whether a finished stage's files are intact,
which interrupted stage can resume from its checkpoints, and content fingerprints of a given model folder.

- A stage folder (``teacher/``, ``analysis/``, ``student/``, ``baseline/``) is the run's own only when it holds a
  ``stage_done.json`` marker; a folder of that name without one is never deleted (the run stops and names it).
- The marker lists every file of the stage with its size; a reused stage whose files are missing, truncated or
  unreadable JSON is rebuilt (the log names the file).
- A running stage writes into ``<out>/.<stage>.tmp`` with a ``partial.json`` (the stage's fingerprint, the process
  id and host): a later run with the same fingerprint resumes from its last complete ``checkpoint-N``; a different
  fingerprint, or a dead run's leftover, is removed; a live run's folder is an error.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import struct

from ..constants import (
    CARD_FILENAME,
    CHECKPOINT_WEIGHT_FILES,
    EVALUATION_DIRNAME,
    RESULTS_FILENAME,
    RUN_MARKER,
    STAGE_DIRNAMES,
    STAGE_MARKER,
    SUMMARY_FILENAME,
    TEACHER_CACHE_DIRNAME,
)
from ..utils import read_json, write_json

__all__ = ["PARTIAL_FILENAME", "stage_manifest", "stage_damage", "check_own_folder",
           "check_stage_folders", "claim_tmp_dir", "last_complete_checkpoint", "remove_checkpoints",
           "model_content_fingerprint", "pid_alive"]

PARTIAL_FILENAME = "partial.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")


# ---------------------------------------------------------------------------------------------- finished stages
def stage_manifest(directory: str) -> dict:
    """Relative path -> size in bytes of every file under ``directory`` (the marker itself excluded)."""
    files = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, directory)
            # the model card and its graphs are rewritten after the stage (hf-spectralkd card): not stage state
            if rel != STAGE_MARKER and name != CARD_FILENAME and not name.endswith(".png"):
                files[rel] = os.path.getsize(path)
    return dict(sorted(files.items()))


def stage_damage(directory: str, marker: dict) -> str | None:
    """Why the finished stage in ``directory`` cannot be reused (a missing, truncated or unreadable file), or None."""
    files = marker.get("files")
    if isinstance(files, dict):
        for rel, size in files.items():
            path = os.path.join(directory, rel)
            if not os.path.isfile(path):
                return f"{path} is missing"
            actual = os.path.getsize(path)
            if actual != size:
                return f"{path} has {actual} bytes but the finished stage wrote {size} (truncated or replaced)"
        names = list(files)
    else:  # a marker written before markers listed their files
        names = [rel for rel in stage_manifest(directory)]
        if not names:
            return f"{directory} holds only its {STAGE_MARKER} (its files were deleted)"
    for rel in names:
        if rel.endswith(".json"):
            path = os.path.join(directory, rel)
            try:
                with open(path, encoding="utf-8") as handle:
                    json.load(handle)
            except (OSError, ValueError) as exc:
                return f"{path} is not readable JSON ({str(exc).splitlines()[0]})"
    return None


def check_own_folder(directory: str) -> None:
    """Raise ``ValueError`` when ``directory`` exists but no run wrote it (no stage marker): it is never deleted;
    nor is a symbolic link (a stage is replaced by renaming a finished folder into place)."""
    if os.path.islink(directory):
        raise ValueError(
            f"{directory} is a symbolic link: a stage replaces its folder as a whole when it finishes, which a link "
            "cannot be (and the folder it points to is not the run's to delete); nothing was done. Replace the link "
            "with a real folder (or remove it), or set output.dir to another directory"
        )
    if os.path.lexists(directory) and not os.path.isfile(os.path.join(directory, STAGE_MARKER)):
        raise ValueError(
            f"{directory} exists but was not written by an hf-spectralkd run (it has no {STAGE_MARKER}); the run "
            "would replace it, so nothing was done and nothing was deleted: move that folder away or set output.dir "
            "to another directory"
        )


def check_stage_folders(out: str) -> None:
    """Every stage folder of ``out`` that exists is the run's own, and so are the files the run writes at its top
    (before any work)."""
    check_run_files(out)
    for name in STAGE_DIRNAMES:
        check_own_folder(os.path.join(out, name))


# what a run writes at the top of its output directory besides its stage folders
RUN_FILES = (RESULTS_FILENAME, SUMMARY_FILENAME, EVALUATION_DIRNAME, TEACHER_CACHE_DIRNAME)


def _is_run_dir(out: str) -> bool:
    """Whether ``out`` is a run's folder: it carries the run marker, or (a run from before the marker existed) a
    finished stage folder or a results.json the library wrote."""
    if os.path.isfile(os.path.join(out, RUN_MARKER)):
        return True
    if any(os.path.isfile(os.path.join(out, name, STAGE_MARKER)) for name in STAGE_DIRNAMES):
        return True
    results = read_json(os.path.join(out, RESULTS_FILENAME))
    return isinstance(results, dict) and "format_version" in results and "student" in results


def check_run_files(out: str) -> None:
    """Refuse, before any work, an output directory that is the filesystem root or the home directory, or one that
    holds files this run would replace (results.json, summary.md, evaluation/, teacher_cache/) which no run wrote."""
    real = os.path.realpath(out)
    if real in (os.path.realpath(os.sep), os.path.realpath(os.path.expanduser("~"))):
        raise ValueError(
            f"output.dir {out!r} is the filesystem root or your home directory: a run writes results.json, summary.md "
            "and its stage folders there. Set output.dir to a folder of its own (e.g. runs/NAME)"
        )
    if not os.path.isdir(out) or _is_run_dir(out):
        return
    clashes = [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]
    if clashes:
        raise ValueError(
            f"output.dir {out} holds {', '.join(clashes)}, which this run would replace, but no hf-spectralkd run "
            f"wrote them (the folder has no {RUN_MARKER}): nothing was done and nothing was changed. Move them away "
            "or set output.dir to another directory"
        )


def mark_run_dir(out: str) -> None:
    """Mark ``out`` as a run's folder (its top-level run files are then the run's to replace)."""
    path = os.path.join(out, RUN_MARKER)
    if not os.path.isfile(path):
        write_json(path, {"library": "hf_spectralkd", "created": datetime.datetime.now(datetime.timezone.utc)
                          .isoformat(timespec="seconds")})


# ---------------------------------------------------------------------------------------------- interrupted stages
def pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user holds the id: alive
        return True
    except (OSError, ValueError, TypeError):
        return False
    return True


def claim_tmp_dir(tmp: str, fingerprint: str) -> bool:
    """Make ``tmp`` this process's working folder for a stage with ``fingerprint``; True when it is kept to resume.

    A dead run's folder for the same fingerprint is kept (its checkpoints are resumed); any other leftover of a dead
    run is removed; the folder of a run still alive on this host is a ``ValueError``.
    """
    import shutil

    partial = read_json(os.path.join(tmp, PARTIAL_FILENAME))
    keep = False
    if os.path.isdir(tmp) and isinstance(partial, dict):
        same_host = partial.get("host") == socket.gethostname()
        pid = partial.get("pid")
        if same_host and pid != os.getpid() and pid_alive(pid):
            raise ValueError(f"{tmp} is being written by another run (process {pid}, still running): wait for it "
                             "to finish or stop it, or use another output.dir")
        keep = partial.get("fingerprint") == fingerprint and last_complete_checkpoint(tmp) is not None
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, exist_ok=True)
    write_json(os.path.join(tmp, PARTIAL_FILENAME),
               {"fingerprint": fingerprint, "pid": os.getpid(), "host": socket.gethostname()})
    return keep


def _checkpoints(folder: str) -> list:
    if not os.path.isdir(folder):
        return []
    found = [(int(m.group(1)), os.path.join(folder, name)) for name in os.listdir(folder)
             if (m := CHECKPOINT_PATTERN.match(name)) and os.path.isdir(os.path.join(folder, name))]
    return [path for _step, path in sorted(found, reverse=True)]


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest ``checkpoint-N`` under ``folder`` (or its ``_trainer/``) with the trainer state and weights."""
    for base in (folder, os.path.join(folder, "_trainer")):
        for path in _checkpoints(base):
            state = read_json(os.path.join(path, "trainer_state.json"))
            # complete when the Trainer wrote its state and the weights (it writes trainer_state.json last)
            weights = any(os.path.isfile(os.path.join(path, w)) for w in CHECKPOINT_WEIGHT_FILES)
            if isinstance(state, dict) and weights:
                return path
    return None


def remove_checkpoints(folder: str) -> None:
    """A finished stage keeps its model, not the checkpoints it resumed from (nor the partial-run record)."""
    import shutil

    for path in _checkpoints(folder):
        shutil.rmtree(path, ignore_errors=True)
    partial = os.path.join(folder, PARTIAL_FILENAME)
    if os.path.exists(partial):
        os.remove(partial)


# ---------------------------------------------------------------------------------------------- given models
def _safetensors_header(path: str) -> str | None:
    """The JSON header of a .safetensors file (tensor names, shapes, dtypes, offsets and metadata), or None."""
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100 * 2**20:
                return None
            return handle.read(length).decode("utf-8", errors="replace")
    except (OSError, struct.error):
        return None


def model_content_fingerprint(location: str) -> dict:
    """What identifies a given model folder's weights: every weight/config file's size and mtime, plus the
    safetensors headers (shapes, dtypes, offsets); a Hub id (no local folder) is its own name."""
    from ..utils import hash_object

    if not os.path.isdir(location):
        return {"reference": location}
    files = {}
    for name in sorted(os.listdir(location)):
        path = os.path.join(location, name)
        if name == STAGE_MARKER or not os.path.isfile(path):
            continue
        if not name.endswith((".safetensors", ".bin", ".json", ".h5", ".pt", ".pth")):
            continue
        stat = os.stat(path)
        entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        if name.endswith(".safetensors"):
            entry["header"] = hash_object(_safetensors_header(path))
        files[name] = entry
    return {"files": files}
