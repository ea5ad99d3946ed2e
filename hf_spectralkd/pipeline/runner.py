"""One stage of a run: reused when its inputs are unchanged, otherwise written all-or-nothing and timed.

A stage writes into ``<out>/.<name>.tmp`` and is renamed to ``<out>/<name>`` with a ``stage_done.json`` marker
(fingerprint of its inputs, seconds, finish time) only when it completes: an interrupted run (Ctrl-C, a
``kill``, an error) keeps the finished stages, leaves no half-written one, and the next run resumes after them.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ..constants import STAGE_MARKER
from ..utils import read_json, write_json

__all__ = ["StageResult", "run_stage", "stage_done", "stage_tmp_dir"]


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


def stage_done(directory: str, fingerprint: str) -> Optional[dict]:
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
    marker = stage_done(final, fingerprint)
    if marker:
        if reusing:
            log(reusing)
        return StageResult(name, final, float(marker.get("seconds", 0.0)), reused=True)
    if running:
        log(running)
    tmp = stage_tmp_dir(plan.out, name)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    start = time.time()
    try:
        fn(tmp)
        seconds = round(time.time() - start, 2)
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat()
        write_json(os.path.join(tmp, STAGE_MARKER),
                   {"stage": name, "fingerprint": fingerprint, "seconds": seconds, "finished": finished})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written stage behind
        raise
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    return StageResult(name, final, seconds, reused=False)
