"""Teacher cache: the frozen teacher's logits and aligned hidden states, computed once, read every epoch.

Layout of a cache directory (all arrays are ``numpy`` ``.npy`` files opened memory-mapped, float16):

* ``logits.npy``   ``(N, C)`` teacher logits, one row per example; for a per-token head (token classification,
  extractive QA's stacked start/end logits) ``(T, C)``, real tokens only, laid out as ``hidden.npy``;
* ``hidden.npy``   ``(T, K, D)`` hidden states of the ``K`` aligned teacher layers, **real tokens only**
  (``T`` = total number of non-padding tokens), example ``i`` owning rows ``offsets[i]:offsets[i+1]``;
  absent from a logits-only cache (no aligned layers: logit KD, ``beta = 0``), whose fingerprint lists no layers;
* ``offsets.npy``  ``(N + 1,)`` int64, ``ids.npy`` ``(N,)`` int64 example ids (the dataset's id column);
* ``checksums.npy`` ``(N,)`` int64 checksum of each example's real input ids (catches inputs that change);
* ``cache_meta.json``  the fingerprint (teacher weights hash, data hash, layer map), layers, shapes.

Examples are found by their id (an integer column, ``example_id`` by default; :func:`add_example_ids` adds
one); a batch carries the ids as ``batch["example_id"]`` whatever the column is called
(:class:`~hf_spectralkd.collator.DistillationDataCollator` puts them there). The fingerprint covers the
teacher's weights, the training inputs and the stored layers: when the teacher or the inputs change, or a run
needs a layer the cache does not store, the trainer
(``SpectralDistillationTrainer(..., teacher_cache=directory)``) rebuilds the cache. Pipelines whose inputs
change from epoch to epoch (``set_transform`` / ``with_transform`` augmentation, iterable datasets) are
refused: a cache of one epoch's inputs would silently be wrong for the next.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from .adapters import AdapterOutput, get_adapter, unwrap_model
from .collator import DistillationDataCollator
from .constants import CACHE_META_FILENAME, EXAMPLE_ID_KEY
from .utils import read_json, write_json

__all__ = [
    "DamagedCacheError",
    "TeacherCache",
    "build_teacher_cache",
    "open_teacher_cache",
    "enable_teacher_cache",
    "add_example_ids",
    "cache_fingerprint",
    "check_fixed_inputs",
    "DEFAULT_ID_COLUMN",
]

DEFAULT_ID_COLUMN = EXAMPLE_ID_KEY  # the dataset column; batches carry the ids under EXAMPLE_ID_KEY
FORMAT_VERSION = 1
_MOD = (1 << 61) - 1
logger = logging.getLogger(__name__)


def add_example_ids(dataset, column: str = DEFAULT_ID_COLUMN):
    """Return ``dataset`` with an integer id column ``0..n-1`` (the key of the teacher cache)."""
    if column in dataset.column_names:
        return dataset
    return dataset.add_column(column, list(range(len(dataset))))


# ---------------------------------------------------------------- fingerprints
def teacher_weights_hash(model) -> str:
    """Hash of the weights; a wrapped model (DDP's ``module.`` prefixes) hashes like the model itself."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap_model(model).state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _input_columns(dataset, id_column: str) -> list:
    wanted = ("input_ids", "token_type_ids", "attention_mask", "position_ids")
    return [c for c in wanted if c in dataset.column_names]


def data_hash(dataset, id_column: str = DEFAULT_ID_COLUMN) -> str:
    """Hash of the model inputs and ids of every example (content, not storage layout)."""
    digest = hashlib.sha256()
    columns = [id_column, *_input_columns(dataset, id_column)]
    table = dataset.select_columns(columns).with_format("numpy")
    for column in columns:
        digest.update(column.encode())
        for value in table[column]:
            digest.update(np.asarray(value, dtype=np.int64).tobytes() + b"|")
    return digest.hexdigest()[:16]


def cache_fingerprint(teacher, dataset, teacher_layers, id_column: str = DEFAULT_ID_COLUMN,
                      per_token: bool = False) -> dict:
    fingerprint = {
        "version": FORMAT_VERSION,
        "teacher": teacher_weights_hash(teacher),
        "data": data_hash(dataset, id_column),
        "teacher_layers": [int(t) for t in teacher_layers],
        "id_column": id_column,
    }
    if per_token:  # only then: caches of sequence-level heads keep their fingerprint
        fingerprint["per_token_logits"] = True
    return fingerprint


def check_cacheable_head(teacher, adapter):
    """The teacher's head, refused where its per-token logits would not fit a cache (a language model's
    tokens x vocabulary logits)."""
    head = adapter.head(teacher)
    if head.name == "multiple-choice":
        raise ValueError(
            "the teacher cache stores one token sequence per example; a multiple-choice example is several "
            "(batch, choices, tokens): train without teacher_cache"
        )
    if head.name in ("masked-lm", "causal-lm"):
        raise ValueError(
            f"the teacher cache does not store a {head.name} teacher's logits (one vocabulary-sized row per token, "
            "tens of GB for a modest corpus): train without teacher_cache"
        )
    return head


def _checksum(ids: torch.Tensor) -> int:
    """Order-sensitive checksum of one example's real token ids."""
    ids = ids.to(torch.int64).cpu()
    weights = torch.arange(1, ids.numel() + 1, dtype=torch.int64)
    return int(((ids + 7) * weights * 1_000_003 + ids.numel()).sum().item() % _MOD)


def check_fixed_inputs(dataset, id_column: str = DEFAULT_ID_COLUMN) -> None:
    """Refuse training data a cache cannot follow: not a ``datasets.Dataset``, an on-the-fly transform, no
    integer id column with unique values, or no ``input_ids`` / ``attention_mask``."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        datasets = None
    if datasets is None or not isinstance(dataset, datasets.Dataset):
        raise ValueError(
            f"the teacher cache needs a datasets.Dataset whose inputs are fixed, got {type(dataset).__name__}: an "
            "iterable or custom dataset may yield different inputs each epoch (augmentation), which a cache of the "
            "teacher's outputs cannot follow. Drop the teacher cache or pre-tokenize into a datasets.Dataset"
        )
    if dataset.format.get("type") == "custom":
        raise ValueError(
            "the training dataset has an on-the-fly transform (set_transform / with_transform): an augmenting "
            "pipeline changes the inputs every epoch, so cached teacher outputs would be wrong. Apply the transform "
            "with dataset.map(...) once (fixed inputs) or train without the teacher cache"
        )
    if id_column not in dataset.column_names:
        raise ValueError(
            f"the teacher cache finds examples by an id column, and the training dataset has no {id_column!r} column "
            f"(columns: {', '.join(dataset.column_names)}); add one with "
            "hf_spectralkd.teacher_cache.add_example_ids(dataset)"
        )
    if "input_ids" not in dataset.column_names or "attention_mask" not in dataset.column_names:
        raise ValueError("the teacher cache needs pre-tokenized text data with input_ids and attention_mask columns")
    ids = np.asarray(dataset[id_column])
    if ids.dtype.kind not in "iu":
        raise ValueError(f"the id column {id_column!r} must hold integers, got {ids.dtype}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"the id column {id_column!r} has duplicate values: every example needs its own id")


# ---------------------------------------------------------------- the cache
class DamagedCacheError(ValueError):
    """A file of the teacher cache is missing, truncated or inconsistent (the message names it)."""


def _load_array(directory: str, name: str):
    path = os.path.join(directory, name)
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise DamagedCacheError(f"the teacher cache file {path} is damaged or missing ({exc}); rebuild the cache") \
            from exc


def _check_shapes(directory: str, logits, hidden, offsets, checksums, ids, per_token: bool = False) -> None:
    """The arrays agree with each other (a file cut short or from another build is caught here, not mid-training);
    ``hidden`` is ``None`` for a logits-only cache."""
    n = len(ids)
    num_tokens = int(offsets[-1]) if len(offsets) else 0
    expected = [("logits.npy rows", len(logits), num_tokens if per_token else n),
                ("checksums.npy rows", len(checksums), n), ("offsets.npy rows", len(offsets), n + 1)]
    if hidden is not None:
        expected.append(("hidden.npy rows", len(hidden), num_tokens))
    problems = [(name, got, want) for name, got, want in expected if got != want]
    if problems:
        name, got, want = problems[0]
        raise DamagedCacheError(f"the teacher cache in {directory} is inconsistent: {name} = {got}, expected {want} "
                                "(a damaged or mixed build); rebuild the cache")


def _check_finite(values: torch.Tensor, directory: str, name: str, ids) -> None:
    if not torch.isfinite(values).all():
        raise ValueError(
            f"the teacher cache {os.path.join(directory, name)} holds non-finite values for the examples "
            f"{torch.as_tensor(ids).reshape(-1)[:5].tolist()} (a float16 overflow or a damaged file): training "
            "stopped; rebuild the cache (delete the folder) or train without it"
        )


class TeacherCache:
    """A built cache, memory-mapped read-only. ``teacher_outputs(inputs)`` replaces the teacher's forward."""

    def __init__(self, directory: str):
        meta_path = os.path.join(directory, CACHE_META_FILENAME)
        if not os.path.isfile(meta_path):
            raise ValueError(
                f"{directory} is not a teacher cache (no {CACHE_META_FILENAME}); build one with "
                "hf-spectralkd cache-teacher"
            )
        self.meta = read_json(meta_path)
        if not isinstance(self.meta, dict) or not isinstance(self.meta.get("fingerprint"), dict):
            raise DamagedCacheError(f"{meta_path} is not valid JSON (damaged): rebuild the teacher cache")
        self.directory = directory
        self.fingerprint = self.meta["fingerprint"]
        self.id_column = self.fingerprint["id_column"]
        self.teacher_layers = list(self.fingerprint["teacher_layers"])
        load = lambda name: _load_array(directory, name)  # noqa: E731
        # a logits-only cache (no layers: logit KD) has no hidden.npy
        self.logits, self.hidden = load("logits.npy"), (load("hidden.npy") if self.teacher_layers else None)
        self.offsets, self.checksums = load("offsets.npy"), load("checksums.npy")
        ids = np.asarray(load("ids.npy"))
        self.per_token = bool(self.fingerprint.get("per_token_logits"))
        _check_shapes(directory, self.logits, self.hidden, self.offsets, self.checksums, ids, self.per_token)
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]

    def __len__(self) -> int:
        return len(self._sorted_ids)

    def disk_bytes(self) -> int:
        return sum(os.path.getsize(os.path.join(self.directory, f)) for f in os.listdir(self.directory))

    def slots(self, example_ids) -> np.ndarray:
        ids = np.asarray(torch.as_tensor(example_ids).cpu(), dtype=np.int64).reshape(-1)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.clip(pos, 0, len(self._sorted_ids) - 1)
        missing = ids[self._sorted_ids[pos] != ids]
        if missing.size:
            raise ValueError(
                f"example ids {missing[:5].tolist()} are not in the teacher cache {self.directory}; rebuild it"
            )
        return self._order[pos]

    def _token_rows(self, inputs: dict, slots) -> np.ndarray:
        """The rows of each example's real tokens in ``hidden.npy``, in batch order, after checking that the inputs
        are the ones the cache was built from (token count and checksum of the real input ids)."""
        ids = inputs[EXAMPLE_ID_KEY]
        mask_cpu = inputs["attention_mask"].detach().cpu().bool()
        input_ids = inputs["input_ids"].detach().cpu()
        spans = []
        for row, slot in enumerate(slots):
            start, end = int(self.offsets[slot]), int(self.offsets[slot + 1])
            real = mask_cpu[row]
            if int(real.sum()) != end - start or _checksum(input_ids[row][real]) != int(self.checksums[slot]):
                raise ValueError(
                    f"the inputs of example {int(torch.as_tensor(ids)[row])} differ from the ones the teacher "
                    "cache was built from (an augmenting or re-tokenizing pipeline?): cached teacher outputs "
                    "would be wrong. Rebuild the cache or train without it"
                )
            spans.append(np.arange(start, end))
        return np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)

    def _hidden_states(self, inputs: dict, rows: np.ndarray) -> dict:
        """``{teacher layer: (B, L, D) float32}`` gathered from ``hidden.npy`` (padding positions are zero)."""
        mask = inputs["attention_mask"]
        batch, length = mask.shape
        k, width = self.hidden.shape[1], self.hidden.shape[2]
        # one gather from the memory map; real tokens in row-major order are exactly the mask's True positions
        flat = torch.from_numpy(np.asarray(self.hidden[rows], dtype=np.float32))
        _check_finite(flat, self.directory, "hidden.npy", inputs[EXAMPLE_ID_KEY])
        out = torch.zeros(batch, length, k, width, dtype=torch.float32)
        out[mask.detach().cpu().bool()] = flat
        out = out.to(mask.device)
        return {layer: out[:, :, i] for i, layer in enumerate(self.teacher_layers)}

    def teacher_outputs(self, inputs: dict, need_hidden: bool | None = None) -> AdapterOutput:
        """The teacher's outputs for a batch, read from the cache (float32 on the batch's device); the batch's
        example ids are ``inputs["example_id"]`` (``EXAMPLE_ID_KEY``). ``need_hidden`` (default: whether the cache
        stores layers) also returns the stored layers' hidden states; asking a logits-only cache for them is an
        error."""
        if need_hidden is None:
            need_hidden = bool(self.teacher_layers)
        if need_hidden and not self.teacher_layers:
            raise ValueError(
                f"the teacher cache in {self.directory} stores the teacher's logits only (built without aligned "
                "layers, beta = 0) but hidden states were asked for: rebuild it with the aligned layers"
            )
        ids = inputs[EXAMPLE_ID_KEY]
        mask = inputs["attention_mask"]
        slots = self.slots(ids)
        rows = self._token_rows(inputs, slots)  # checked on every batch, hidden states read or not
        logits = torch.from_numpy(np.asarray(self.logits[rows if self.per_token else slots], dtype=np.float32))
        _check_finite(logits, self.directory, "logits.npy", ids)
        if self.per_token:  # (T, C) real tokens -> (B, L, C), zero on padding
            flat, logits = logits, torch.zeros(*mask.shape, logits.shape[-1], dtype=torch.float32)
            logits[mask.detach().cpu().bool()] = flat
        hidden = self._hidden_states(inputs, rows) if need_hidden else None
        return AdapterOutput(logits=logits.to(mask.device), hidden_states=hidden, attention_mask=mask)


# ---------------------------------------------------------------- building
def _check_target(directory: str) -> None:
    if os.path.exists(directory) and not (
        os.path.isdir(directory)
        and (not os.listdir(directory) or os.path.isfile(os.path.join(directory, CACHE_META_FILENAME)))
    ):
        raise ValueError(
            f"refusing to write the teacher cache to {directory}: it exists and is not a teacher cache "
            "(the cache directory is replaced as a whole); choose a new or empty directory"
        )


def _token_offsets(rows) -> tuple:
    """``(lengths, offsets)``: real tokens of each example and where its rows start in ``hidden.npy``."""
    lengths = np.array([int(np.sum(m)) for m in rows.with_format("numpy")["attention_mask"]], dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return lengths, offsets


def _open_outputs(directory: str, out: AdapterOutput, teacher_layers, n: int, num_tokens: int,
                  per_token: bool = False) -> tuple:
    """``(logits, hidden)`` memory maps sized from the first batch's outputs; ``hidden`` is ``None`` without layers
    (a logits-only cache)."""
    num_labels = out.logits.shape[-1]
    rows = num_tokens if per_token else n
    logits_mm = np.lib.format.open_memmap(os.path.join(directory, "logits.npy"), "w+", np.float16, (rows, num_labels))
    if not teacher_layers:
        return logits_mm, None
    if out.hidden_states[0].dim() != 3:
        raise ValueError("the teacher cache stores (N, L, D) token hidden states; this teacher returns feature maps")
    width = out.hidden_states[teacher_layers[0]].shape[-1]
    hidden_mm = np.lib.format.open_memmap(
        os.path.join(directory, "hidden.npy"), "w+", np.float16, (num_tokens, len(teacher_layers), width)
    )
    return logits_mm, hidden_mm


def _write_arrays(directory, teacher, adapter, loader, teacher_layers, lengths, offsets, device, head=None) -> None:
    """Run the teacher over ``loader`` and write the arrays of the cache layout into ``directory`` (no
    ``hidden.npy`` when ``teacher_layers`` is empty: the teacher then runs without hidden states)."""
    per_token = bool(head is not None and head.per_token)
    n = len(lengths)
    logits_mm = hidden_mm = None
    ids_out, checksums = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    cursor = 0
    for batch in loader:
        ids = batch[EXAMPLE_ID_KEY]  # the adapter passes the model its inputs only
        batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        out = adapter.forward(teacher, batch, output_hidden_states=bool(teacher_layers), head=head)
        if logits_mm is None:
            logits_mm, hidden_mm = _open_outputs(directory, out, teacher_layers, n, int(offsets[-1]), per_token)
        mask = batch["attention_mask"].bool().cpu()
        stacked = None
        if hidden_mm is not None:
            stacked = torch.stack([out.hidden_states[t] for t in teacher_layers], dim=2).float().cpu()  # (B, L, K, D)
        logits = out.logits.float().cpu()
        if not per_token:
            logits_mm[cursor : cursor + len(ids)] = logits.numpy().astype(np.float16)
        for row in range(len(ids)):
            i = cursor + row
            real = mask[row]
            if int(real.sum()) != lengths[i]:
                raise ValueError(
                    f"the collator changed the length of example {int(ids[row])}; the cache needs fixed inputs"
                )
            if stacked is not None:
                hidden_mm[offsets[i] : offsets[i + 1]] = stacked[row][real].numpy().astype(np.float16)
            if per_token:
                logits_mm[offsets[i] : offsets[i + 1]] = logits[row][real].numpy().astype(np.float16)
            checksums[i] = _checksum(batch["input_ids"][row].cpu()[real])
        ids_out[cursor : cursor + len(ids)] = np.asarray(ids, dtype=np.int64)
        cursor += len(ids)
    for array in (logits_mm, hidden_mm):
        if array is not None:
            array.flush()
    del logits_mm, hidden_mm
    np.save(os.path.join(directory, "ids.npy"), ids_out)
    np.save(os.path.join(directory, "offsets.npy"), offsets)
    np.save(os.path.join(directory, "checksums.npy"), checksums)


@torch.no_grad()
def build_teacher_cache(
    teacher,
    dataset,
    collator,
    teacher_layers,
    directory: str,
    id_column: str = DEFAULT_ID_COLUMN,
    batch_size: int = 64,
    device=None,
    adapter=None,
    fingerprint: dict | None = None,
    progress: bool = False,
) -> TeacherCache:
    """Run ``teacher`` once over ``dataset`` and write its logits and ``teacher_layers`` hidden states (an empty
    ``teacher_layers``: the logits only, for logit KD)."""
    check_fixed_inputs(dataset, id_column)
    _check_target(directory)
    adapter = adapter or get_adapter(teacher)
    head = check_cacheable_head(teacher, adapter)
    fingerprint = fingerprint or cache_fingerprint(teacher, dataset, teacher_layers, id_column, head.per_token)
    keep = (id_column, "input_ids", "attention_mask", "token_type_ids", "position_ids", "labels", "label")
    rows = dataset.select_columns([c for c in dataset.column_names if c in keep])
    lengths, offsets = _token_offsets(rows)
    device = device or next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    # a fresh folder of this build's own beside the target (never a folder someone else made, e.g. X.building)
    parent = os.path.dirname(os.path.abspath(directory.rstrip("/")))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory.rstrip('/'))}.building.", dir=parent)
    start_time = time.time()
    try:
        collate = DistillationDataCollator(collator, id_column=id_column)  # the ids: batch["example_id"]
        loader = DataLoader(rows, batch_size=batch_size, shuffle=False, collate_fn=collate)
        if progress:
            from tqdm.auto import tqdm

            loader = tqdm(loader, desc="caching teacher outputs")
        _write_arrays(tmp, teacher, adapter, loader, teacher_layers, lengths, offsets, device, head)
        meta = {
            "fingerprint": fingerprint,
            "num_examples": len(rows),
            "num_tokens": int(offsets[-1]),
            "dtype": "float16",
            "build_seconds": round(time.time() - start_time, 3),
        }
        write_json(os.path.join(tmp, CACHE_META_FILENAME), meta, indent=1)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        teacher.train(was_training)
    return TeacherCache(directory)


def _serves(stored: dict, wanted: dict) -> bool:
    """Whether a cache with fingerprint ``stored`` holds what a run with fingerprint ``wanted`` reads: the same
    teacher, inputs and id column, and every wanted layer stored (a cache with hidden states serves logit KD; a
    logits-only cache serves no run that aligns layers)."""
    same = all(stored.get(k) == v for k, v in wanted.items() if k != "teacher_layers")
    return same and set(wanted["teacher_layers"]) <= set(stored.get("teacher_layers") or [])


def _stale_message(directory: str, stored: dict, wanted: dict) -> str:
    changed = [k for k in wanted if stored.get(k) != wanted[k]]
    message = f"the teacher cache in {directory} is stale ({', '.join(changed)} changed)"
    missing = sorted(set(wanted["teacher_layers"]) - set(stored.get("teacher_layers") or []))
    if missing:
        kept = stored.get("teacher_layers") or []
        held = f"the hidden states of layers {kept}" if kept else "the teacher's logits only"
        message += f"; it holds {held}, and the run needs the hidden states of layers {missing}"
    return message + "; rebuild it"


def open_teacher_cache(
    teacher,
    dataset,
    collator,
    teacher_layers,
    directory: str,
    *,
    id_column: str = DEFAULT_ID_COLUMN,
    rebuild: bool = True,
    **build_kwargs,
) -> TeacherCache:
    """The cache in ``directory`` when its fingerprint (teacher weights, training inputs) matches and it stores every
    layer in ``teacher_layers`` (empty: logits only), else a fresh one built there (``rebuild=False``: a stale
    cache is an error instead). ``build_kwargs`` go to :func:`build_teacher_cache` (batch_size, device, adapter,
    progress)."""
    check_fixed_inputs(dataset, id_column)
    head = check_cacheable_head(teacher, build_kwargs.get("adapter") or get_adapter(teacher))
    fingerprint = cache_fingerprint(teacher, dataset, teacher_layers, id_column, head.per_token)
    if os.path.isfile(os.path.join(directory, CACHE_META_FILENAME)):
        try:
            existing = TeacherCache(directory)
        except DamagedCacheError as exc:
            if not rebuild:
                raise
            logger.warning("%s; rebuilding it", exc)  # a damaged cache heals: it is rebuilt, not read
            return build_teacher_cache(teacher, dataset, collator, teacher_layers, directory, id_column,
                                       fingerprint=fingerprint, **build_kwargs)
        if _serves(existing.fingerprint, fingerprint):
            return existing
        if not rebuild:
            raise ValueError(_stale_message(directory, existing.fingerprint, fingerprint))
    return build_teacher_cache(
        teacher, dataset, collator, teacher_layers, directory, id_column, fingerprint=fingerprint, **build_kwargs
    )


def enable_teacher_cache(
    trainer, directory: str, id_column: str | None = None, rebuild: bool = True
) -> TeacherCache:
    """Make an existing ``trainer`` read the teacher's training-time outputs from the cache in ``directory``
    (the same as constructing it with ``teacher_cache=directory``, for a ``train_dataset`` that already has
    the ``id_column``; default: the trainer's ``teacher_cache_id_column``). The layer map is chosen first;
    evaluation keeps running the live teacher."""
    trainer.use_teacher_cache(directory, id_column)
    return trainer.setup_teacher_cache(rebuild=rebuild)
