"""One stage of a run: reused when its inputs are unchanged, otherwise written all-or-nothing and timed.

A stage writes into ``<out>/.<name>.tmp`` and is renamed to ``<out>/<name>`` with a ``stage_done.json`` marker
(fingerprint of its inputs, seconds, finish time) only when it completes: an interrupted run (Ctrl-C, a
``kill``, an error) keeps the finished stages, leaves no half-written one, and the next run resumes after them.
A finished stage is reused only while its files are intact (:func:`~.state.stage_damage`); a training stage
interrupted after a checkpoint resumes from it (:func:`~.state.claim_tmp_dir`); a folder without the marker is
never deleted (:func:`~.state.check_own_folder`).
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..constants import STAGE_MARKER
from ..guards import NonFiniteLossError, writing_to
from ..utils import read_json, write_json
from .state import (
    check_own_folder,
    claim_tmp_dir,
    last_complete_checkpoint,
    remove_checkpoints,
    stage_damage,
    stage_manifest,
)

__all__ = ["StageResult", "run_stage", "stage_done", "stage_tmp_dir", "resume_checkpoint"]


@dataclass(frozen=True)
class StageResult:
    """Where a stage's outputs are, how long it took (when it ran, or when it first ran) and whether it was reused."""

    name: str
    directory: str
    seconds: float
    reused: bool


def stage_tmp_dir(out: str, name: str) -> str:
    """The folder a running stage writes into (renamed to ``<out>/<name>`` when it completes)."""
    return os.path.join(out, f".{name}.tmp")


def stage_done(directory: str, fingerprint: str) -> dict | None:
    """The stage marker of ``directory`` if it is complete for ``fingerprint``."""
    marker = read_json(os.path.join(directory, STAGE_MARKER))
    if isinstance(marker, dict) and marker.get("fingerprint") == fingerprint:
        return marker
    return None


def run_stage(plan, name: str, fingerprint: str, fn: Callable[[str], None], *, log: Callable[[str], None] = print,
              reusing: str = "", running: str = "") -> StageResult:
    """Run stage ``name`` of ``plan`` (anything with an ``out`` directory) unless ``<out>/<name>`` is complete for
    ``fingerprint``.

    ``fn(directory)`` writes the stage's outputs into ``directory`` (a fresh temporary folder); when it returns,
    the folder gets its marker and replaces ``<out>/<name>``; when it raises (``KeyboardInterrupt`` included),
    the folder is removed and the previous ``<out>/<name>``, if any, is left as it was. ``reusing`` / ``running``
    are logged when the stage is reused / runs.
    """
    final = os.path.join(plan.out, name)
    tmp = stage_tmp_dir(plan.out, name)
    marker = stage_done(final, fingerprint)
    damage = stage_damage(final, marker) if marker else None
    if marker and not damage:
        if reusing:
            log(reusing)
        if os.path.isdir(tmp):  # a dead run's leftover folder of this stage is of no use any more
            claim_tmp_dir(tmp, fingerprint)
            shutil.rmtree(tmp, ignore_errors=True)
        return StageResult(name, final, float(marker.get("seconds", 0.0)), reused=True)
    if damage:
        log(f"[{name}] the finished stage is damaged: {damage}; rebuilding it")
    check_own_folder(final)  # never replace a folder no run wrote
    resumed = claim_tmp_dir(tmp, fingerprint)
    if running:
        log(running + (f" (resuming from {last_complete_checkpoint(tmp)})" if resumed else ""))
    start = time.time()
    try:
        with writing_to(tmp, f"the {name} stage"):  # a full disk: named (a model's own save names no file)
            fn(tmp)
        remove_checkpoints(tmp)
        seconds = round(time.time() - start, 2)
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat()
        write_json(os.path.join(tmp, STAGE_MARKER), {"stage": name, "fingerprint": fingerprint, "seconds": seconds,
                                                     "finished": finished, "files": stage_manifest(tmp)})
    except BaseException as exc:
        # never leave a half-written stage behind; complete training checkpoints stay for the next run to resume,
        # unless training diverged (its checkpoints may hold the non-finite weights)
        if last_complete_checkpoint(tmp) is None or isinstance(exc, NonFiniteLossError):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return StageResult(name, final, seconds, reused=False)


def resume_checkpoint(output_dir: str) -> str | None:
    """The checkpoint a training stage resumes from (the last complete one its interrupted run left), or None."""
    return last_complete_checkpoint(output_dir)
