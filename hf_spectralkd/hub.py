"""Pushing a distilled student (weights, tokenizer, card, graphs) to the Hugging Face Hub.

Every failure (offline, no token, a rejected or failed upload) becomes one :class:`HubPushError` whose message
says what failed and the exact ``hf-spectralkd push`` command that retries; nothing local is touched by a
failed push (the card is written before any network call).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import warnings

from .cards import write_model_card
from .constants import CARD_FILENAME, MODEL_WEIGHT_FILES, STAGE_MARKER
from .errors import UserError
from .loading import PACKAGED_SOURCES, check_repo_id, is_offline
from .results import find_run_results

__all__ = [
    "UPLOAD_IGNORE_PATTERNS", "HubPushError", "hub_errors", "push_student", "recommendation_notice", "retry_command",
    "trainer_push_to_hub",
]

# never uploaded: Trainer internals, checkpoints, optimizer state
UPLOAD_IGNORE_PATTERNS = [
    "_*", "checkpoint-*", "checkpoint-*/**", "optimizer.pt", "scheduler.pt", "rng_state*.pth", "*.lock", STAGE_MARKER,
]


class HubPushError(UserError):
    """A push to the Hub failed; the message says why and how to retry. Local files are intact.

    A ``UserError``: the CLI prints it as one line (no traceback) and exits non-zero."""


def retry_command(model_dir, repo_id: str | None, private: bool = False, revision: str | None = None) -> str:
    command = ["hf-spectralkd", "push", "--model-dir", os.fspath(model_dir), "--repo-id", repo_id or "<user>/<name>"]
    if private:
        command.append("--private")
    if revision:
        command += ["--revision", revision]
    return " ".join(shlex.quote(part) for part in command)


def _describe_error(exc: BaseException) -> str:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "the Hub is unreachable because offline mode is on (HF_HUB_OFFLINE=1)"
    if isinstance(exc, LocalTokenNotFoundError):
        return "no Hugging Face token was found (log in with `hf auth login` or set HF_TOKEN)"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        hint = {401: " (the token is missing or invalid)", 403: " (the token may lack write access to this repo)",
                404: " (repo or revision not found)"}.get(status, "")
        return f"the Hub rejected the request{f' with HTTP {status}' if status else ''}{hint}: {first_line}"
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _network_errors() -> tuple:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    errors = [HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError, OSError]
    try:
        from httpx2 import HTTPError as _HTTPError  # the HTTP client huggingface_hub 2.x uses
    except ImportError:  # pragma: no cover - other huggingface_hub versions
        try:
            from httpx import HTTPError as _HTTPError
        except ImportError:
            _HTTPError = None
    if _HTTPError is not None:
        errors.append(_HTTPError)
    return tuple(errors)


@contextlib.contextmanager
def hub_errors(model_dir, repo_id: str | None, private: bool = False, revision: str | None = None):
    """Turn Hub / network errors raised inside the block into one :class:`HubPushError`."""
    try:
        yield
    except HubPushError:
        raise
    except _network_errors() as exc:
        raise HubPushError(
            f"push to the Hub failed: {_describe_error(exc)}. Nothing is lost: the model and its card (README.md) "
            f"are in {os.fspath(model_dir)}. Retry with: {retry_command(model_dir, repo_id, private, revision)}"
        ) from exc


def _check_ready(student_dir, repo_id: str, private: bool, revision: str | None, token) -> None:
    retry = retry_command(student_dir, repo_id, private, revision)
    if is_offline():
        raise HubPushError(
            "push to the Hub failed: offline mode is on (HF_HUB_OFFLINE=1), so nothing was uploaded. "
            f"The model and its card are in {student_dir}. Retry with network access: HF_HUB_OFFLINE=0 {retry}"
        )
    if token is None:
        from huggingface_hub import get_token

        if get_token() is None:
            raise HubPushError(
                "push to the Hub failed: no Hugging Face token found (HF_TOKEN is not set and `hf auth login` was not "
                f"run), so nothing was uploaded. The model and its card are in {student_dir}. "
                f"Log in, then retry with: {retry}"
            )


def recommendation_notice(results, student_dir) -> str | None:
    """The warning for pushing a distilled student that its own run recommends against (results.json's
    ``recommended`` names the no-KD baseline, chosen on the validation split); None otherwise."""
    rec = (results.recommended if results is not None else None) or {}
    if rec.get("model") != "baseline" or os.path.abspath(str(rec.get("path"))) == os.path.abspath(student_dir):
        return None
    return (
        f"pushing the distilled student {student_dir}, but its run recommends the no-KD student "
        f"{rec.get('path')}: {rec.get('reason')}. The model card says so."
    )


def push_student(
    model_dir,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    api=None,
    regenerate_card: bool = True,
):
    """Write the card (README.md) and upload a finished run's student to ``repo_id``.

    ``model_dir`` is a run dir (``results.json`` + ``student/``) or a student dir (``results.json`` in it or its
    parent; without one, an existing README.md is pushed as it is). Returns the ``CommitInfo`` of the upload.
    Raises ``ValueError`` for a bad directory or repo id (before any work) and :class:`HubPushError` when the Hub
    part fails.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id, "--repo-id")
    results, student_dir = find_run_results(model_dir)
    present = set(os.listdir(student_dir))
    if not present & set(MODEL_WEIGHT_FILES) and not any(n.endswith(".safetensors") for n in present):
        raise ValueError(
            f"{student_dir} holds no model weights ({', '.join(MODEL_WEIGHT_FILES[:3])}, ...): "
            "point --model-dir at a finished run directory (with results.json and student/) "
            "or at the student's directory"
        )
    if results is None and CARD_FILENAME not in present:
        raise ValueError(
            f"no results.json in {student_dir} or its parent and no README.md: "
            "the model card needs the run's results; "
            "run the recipe to the end (hf-spectralkd distill --config ...) or write a README.md first"
        )
    _check_ready(student_dir, repo_id, private, revision, token)  # offline / no token: stop before touching any file
    notice = recommendation_notice(results, student_dir)
    if notice:
        warnings.warn(notice, UserWarning, stacklevel=2)
    if results is not None and regenerate_card:
        # the card for this repo, written locally first: kept if the upload fails
        write_model_card(student_dir, results, repo_id=repo_id)
    if commit_message is None:
        teacher = ((results.teacher if results is not None else None) or {}).get("source")
        teacher = PACKAGED_SOURCES.get(teacher, teacher)
        commit_message = "Upload SpectralKD student" + (f" distilled from {teacher}" if teacher else "")
    api = api or HfApi(library_name="hf_spectralkd")
    with hub_errors(student_dir, repo_id, private, revision):
        repo = api.create_repo(repo_id, token=token, private=private, exist_ok=True)
        repo_id = getattr(repo, "repo_id", None) or repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, token=token, exist_ok=True)
        return api.upload_folder(
            repo_id=repo_id, folder_path=student_dir, commit_message=commit_message, token=token, revision=revision,
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
        )


def trainer_push_to_hub(trainer, parent_push, **kwargs):
    """``SpectralDistillationTrainer.push_to_hub``: ``Trainer.push_to_hub`` (``parent_push``) with Hub errors turned
    into one :class:`HubPushError`. When the push fails before the Trainer saved (e.g. ``create_repo`` rejected),
    the model and its card are saved to ``output_dir`` anyway, so the retry command has something to push."""
    args = trainer.args
    try:
        with hub_errors(args.output_dir, args.hub_model_id, bool(kwargs.get("private")), kwargs.get("revision")):
            return parent_push(**kwargs)
    except HubPushError:
        if args.should_save:
            trainer.save_model(_internal_call=True)
            name = args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir))
            trainer.create_model_card(model_name=name.split("/")[-1])
        raise
