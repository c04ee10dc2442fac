"""Sentence embeddings from any transformers encoder.

CONTRACT:
    class Embedder:
        def __init__(self, model_path: str, *, batch_size=64, max_length=256,
                     cache_dir: Path | None = None, device="auto", local_files_only=True)
        dimension: int
        model_path: str
        def encode(self, texts: Sequence[str], batch_size: int | None = None,
                   show_progress: bool = False) -> np.ndarray  # (n, dim) float32, L2-normalised
        def encode_one(self, text: str) -> np.ndarray          # (dim,)
    Mean pooling over the attention mask, then L2 normalisation (identical to
    sentence-transformers for all-MiniLM-L6-v2). Batches are sorted by length; vectors
    are cached by sha256(model id + max_length + text) on disk when cache_dir is set.

Additions beyond the contract: ``Embedder.model_id`` (path + weights' size/mtime, so a
model re-trained at the same path never serves stale vectors), ``.device``, ``.model``,
``.is_loaded``, ``.stats`` (texts encoded, cache hits, batches run), ``.clear_cache()``, ``.close()``, and
:class:`VectorCache`, the SQLite store (``<cache_dir>/vectors.sqlite3``, WAL, shared
safely by several processes). The model loads on the first cache miss, so a process
whose texts are all cached never loads torch weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

POOLING = "mean-l2-v1"  # part of every cache key: change it when the pooling changes
CACHE_FILE = "vectors.sqlite3"
CREATE_TABLE = "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID"
# Files whose change means new vectors: weights, config and tokenizer (README edits do not count).
IDENTITY_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")
# Texts are tokenised and length-sorted in chunks of this many batches: bounded memory on huge
# inputs, near-global sorting, and cache writes that survive an interrupted run.
BATCHES_PER_CHUNK = 64
# Where config.json keeps the width of the last hidden state (BERT-likes, DistilBERT, T5-likes, GPT-likes).
DIMENSION_KEYS = ("hidden_size", "dim", "d_model", "n_embd")
# Rows x tokens of one forward pass at most (as the classifier's inference path): long texts go a few at a time.
MAX_BATCH_TOKENS = 4096


@dataclass
class EmbedderStats:
    encoded: int = 0  # texts that went through the model
    cache_hits: int = 0
    batches: int = 0  # forward passes


class Embedder:
    """L2-normalised mean-pooled sentence vectors from a transformers encoder folder or hub id."""

    def __init__(
        self,
        model_path: str,
        *,
        batch_size: int = 64,
        max_length: int = 256,
        cache_dir: Path | None = None,
        device: str = "auto",
        local_files_only: bool = True,
        precision: str = "float32",
    ) -> None:
        if batch_size < 1 or max_length < 2:
            raise ConfigError(
                f"embeddings: batch_size must be >= 1 and max_length >= 2 (got {batch_size}, {max_length})"
            )
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.local_files_only = local_files_only
        self._device_setting = device
        self.folder = resolve_model_folder(self.model_path, local_files_only)
        self.dense = read_dense(self.folder)
        self.dimension = self.dense.shape[0] if self.dense is not None else read_dimension(self.folder)
        self.model_id = model_identity(self.folder)
        self.stats = EmbedderStats()
        self.precision = precision
        # bfloat16 vectors differ from float32's (~1e-3 in cosine): they never share cache entries.
        precision_key = "" if precision == "float32" else f"{precision}\0"
        self._key_prefix = hashlib.sha256(f"{self.model_id}\0{max_length}\0{precision_key}".encode())
        self._cache = VectorCache.open(Path(cache_dir) / CACHE_FILE) if cache_dir is not None else None
        # The encoder as an ONNX graph, saved in the cache folder by the first process that loads torch:
        # later cold processes embed with it without importing torch (see _onnx_encoder).
        self._graph = graph_path(Path(cache_dir), self.model_id) if cache_dir is not None else None
        self._onnx: Any = None  # OnnxSentenceEncoder, False when it does not apply, None before the first look
        self._model_lock = threading.Lock()  # fast tokenizers and the model are not thread-safe
        self._loaded: tuple[Any, Any, torch.device] | None = None
        self._fast: Any = None

    def __repr__(self) -> str:
        return f"Embedder({self.model_path!r}, dimension={self.dimension}, device={self._device_setting!r})"

    # -- public API ------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Vectors of ``texts`` in their order: (n, dimension) float32, unit length."""
        texts = _check_texts(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        positions: dict[str, list[int]] = {}  # each distinct text is encoded once
        for index, text in enumerate(texts):
            positions.setdefault(text, []).append(index)
        pending = list(positions)
        keys = {text: self._key(text) for text in pending} if self._cache is not None else {}
        if self._cache is not None and pending:
            found = self._cache.get_many([keys[text] for text in pending], self.dimension)
            self.stats.cache_hits += sum(len(positions[t]) for t in pending if keys[t] in found)
            for text in pending:
                if keys[text] in found:
                    out[positions[text]] = found[keys[text]]
            pending = [text for text in pending if keys[text] not in found]
        if pending:
            self._encode_missing(pending, positions, keys, out, batch_size or self.batch_size, show_progress)
        return out

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory (it loads on the first cache miss)."""
        return self._loaded is not None

    @property
    def model(self) -> Any:
        """The underlying transformers encoder (loaded on first access)."""
        return self._load()[1]

    @property
    def device(self) -> str:
        return str(self._load()[2])

    def clear_cache(self) -> None:
        """Drop every cached vector (of every model sharing the cache file)."""
        if self._cache is not None:
            self._cache.clear()

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    # -- internals -------------------------------------------------------------------------
    def _key(self, text: str) -> bytes:
        digest = self._key_prefix.copy()
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.digest()

    def _encode_missing(
        self,
        texts: list[str],
        positions: dict[str, list[int]],
        keys: dict[str, bytes],
        out: np.ndarray,
        batch_size: int,
        show_progress: bool,
    ) -> None:
        from services.progress import progress_bar

        chunk_size = batch_size * BATCHES_PER_CHUNK
        with progress_bar(len(texts), "embedding", "text", enabled=show_progress) as progress:
            for start in range(0, len(texts), chunk_size):
                chunk = texts[start : start + chunk_size]
                vectors = self._embed(chunk, batch_size, progress)
                for text, vector in zip(chunk, vectors, strict=True):
                    out[positions[text]] = vector
                if self._cache is not None:
                    self._cache.put_many((keys[text], vector) for text, vector in zip(chunk, vectors, strict=True))

    def _embed(self, texts: list[str], batch_size: int, progress: Any) -> np.ndarray:
        """Tokenise once, run length-sorted batches with just enough padding, restore the order.

        Batches also stop at ``MAX_BATCH_TOKENS`` rows x tokens (long texts go a few at a time)
        and run through the encoder's saved ONNX graph where one serves (see
        :meth:`_onnx_encoder`), else the classifier's inference path: a frozen trace on a CPU,
        bfloat16 where ``precision`` asks for it.
        """
        onnx = self._onnx_encoder()
        if onnx is not None:
            ids = onnx.token_ids(texts)
            return self._run_batches(ids, batch_size, progress, onnx)
        import torch

        from services.training.batching import pad_batch

        tokenizer, _, device = self._load()
        with self._model_lock:
            ids = tokenizer(
                texts,
                truncation=True,
                max_length=self._max_tokens(tokenizer),
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
        pad_id = tokenizer.pad_token_id or 0

        def forward(rows: list[list[int]]) -> np.ndarray:
            input_ids, mask = pad_batch(rows, pad_id, device)
            mask = torch.ones_like(input_ids) if mask is None else mask
            with torch.inference_mode():
                return self._encoder()(input_ids, mask).float().cpu().numpy()

        result = self._run_batches(ids, batch_size, progress, forward)
        self._save_graph()
        return result

    def _run_batches(
        self, ids: list[list[int]], batch_size: int, progress: Any, forward: Callable[[list[list[int]]], np.ndarray]
    ) -> np.ndarray:
        from services.training.padding import length_sorted_chunks

        result = np.empty((len(ids), self.dimension), dtype=np.float32)
        for rows in length_sorted_chunks([len(row) for row in ids], batch_size, MAX_BATCH_TOKENS):
            with self._model_lock:
                result[rows] = forward([ids[i] for i in rows])
                self.stats.batches += 1
                self.stats.encoded += len(rows)
            progress.update(len(rows))
        return result

    def _onnx_encoder(self) -> Any:
        """The encoder's ONNX graph, where it gives this embedder's vectors without torch: a graph an
        earlier process saved in the cache folder, a model folder with ``tokenizer.json``, the CPU,
        float32. None otherwise."""
        if self._onnx is None:
            self._onnx = False
            if self._graph is not None and self._graph.is_file() and self._graph_applies():
                from services.training.serving import OnnxSentenceEncoder, model_max_length

                limit = min(self.max_length, model_max_length(self.folder) or self.max_length)
                try:
                    self._onnx = OnnxSentenceEncoder.open(self._graph, self.folder, max_length=limit, dense=self.dense)
                except ModelError as exc:
                    log.warning("embedding with torch: %s", exc)
        return self._onnx or None

    def _graph_applies(self) -> bool:
        from services.training.loading import prefers_bfloat16, resolves_to_cpu

        return (
            self.precision in ("float32", "auto")
            and not prefers_bfloat16(self.precision)
            and (self.folder / "tokenizer.json").is_file()
            and resolves_to_cpu(self._device_setting)
            and importlib.util.find_spec("onnxruntime") is not None
        )

    def _save_graph(self) -> None:
        """After torch has embedded on a CPU in float32: save the graph the next cold process uses."""
        if self._graph is None or self._graph.exists() or not self._graph_applies():
            return
        from services.training.onnx_runtime import export_sentence_encoder

        tokenizer, model, device = self._load()
        if device.type == "cpu":
            with self._model_lock:
                export_sentence_encoder(model, tokenizer, self._graph)

    def _encoder(self) -> Any:
        """The pooled forward pass (traced on a CPU), built once per embedder."""
        if self._fast is None:
            from services.training.inference import fast_sentence_encoder

            tokenizer, model, _ = self._load()
            self._fast = fast_sentence_encoder(model, tokenizer, precision=self.precision)
            if self.dense is not None:
                self._fast = _with_dense(self._fast, self.dense)
        return self._fast

    def _max_tokens(self, tokenizer: Any) -> int:
        """The configured max_length, never beyond what the model's position embeddings allow."""
        limit = getattr(tokenizer, "model_max_length", None)
        return min(self.max_length, limit) if isinstance(limit, int) and 0 < limit < 1_000_000 else self.max_length

    def _load(self) -> tuple[Any, Any, torch.device]:
        if self._loaded is None:
            with self._model_lock:
                if self._loaded is None:
                    self._loaded = load_encoder(self.folder, self._device_setting, self.local_files_only)
        return self._loaded


# -- model loading -----------------------------------------------------------------------
def resolve_model_folder(model_path: str, local_files_only: bool) -> Path:
    """The local folder of a model: the path itself, or the hub cache snapshot of an id."""
    path = Path(model_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a transformers model folder (no config.json)")
        return path.resolve()
    if path.exists() or model_path.startswith((".", "/", "~")):
        raise ModelError(f"{model_path}: no such model folder")
    from transformers.utils import cached_file

    try:
        config_file = cached_file(model_path, "config.json", local_files_only=local_files_only)
    except OSError as exc:
        hint = " (downloads are off: set allow_downloads = true)" if local_files_only else ""
        raise ModelError(f"cannot find model '{model_path}'{hint}: {' '.join(str(exc).split())[:200]}") from None
    if config_file is None:
        raise ModelError(f"model '{model_path}' has no config.json")
    return Path(config_file).parent


def read_dimension(folder: Path) -> int:
    """The encoder's hidden size, read from config.json without importing transformers."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}: cannot read config.json: {exc}") from None
    for key in DIMENSION_KEYS:
        if isinstance(config.get(key), int):
            return config[key]
    raise ModelError(f"{folder}: config.json has no hidden size ({', '.join(DIMENSION_KEYS)}); is it a text encoder?")


def read_dense(folder: Path) -> np.ndarray | None:
    """The ``(out, in)`` weight of a sentence-transformers ``Dense`` module that ``modules.json`` lists
    after pooling (linear, no bias: what ``plugins.recommender.adapter`` saves); None without one."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    dense = [m for m in modules if isinstance(m, dict) and str(m.get("type", "")).endswith("models.Dense")]
    if not dense:
        return None
    path = folder / str(dense[0].get("path", ""))
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        from safetensors.numpy import load_file

        weight = load_file(str(path / "model.safetensors"))["linear.weight"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: unreadable Dense module: {exc}") from None
    if len(dense) > 1 or config.get("bias", True) or not str(config.get("activation_function")).endswith("Identity"):
        raise ModelError(f"{path}: only one linear Dense module without bias is supported after pooling")
    return np.ascontiguousarray(weight, dtype=np.float32)


def _with_dense(encoder: Any, weight: np.ndarray) -> Any:
    """``encoder``'s unit vectors through a linear map, normalised again (the map is scale-free after it)."""
    import torch

    matrix = torch.from_numpy(weight)

    def encode(input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = encoder(input_ids, mask).float()
        return torch.nn.functional.normalize(pooled @ matrix.to(pooled.device).T, p=2, dim=-1)

    return encode


def graph_path(cache_dir: Path, model_id: str) -> Path:
    """Where the encoder of ``model_id`` is kept as an ONNX graph."""
    return cache_dir / "onnx" / f"{hashlib.sha256(model_id.encode()).hexdigest()[:24]}.onnx"


def model_identity(folder: Path) -> str:
    """Folder plus size and mtime of the files that define the vectors (weights, a Dense module's too,
    config, tokenizer)."""
    candidates = [*folder.iterdir(), *folder.glob("*/*.safetensors")]
    files = sorted(p for p in candidates if p.is_file() and p.suffix in IDENTITY_SUFFIXES)
    stats = ";".join(f"{p.relative_to(folder).as_posix()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return f"{folder}|{stats}|{POOLING}"


def resolve_device(setting: str) -> torch.device:
    import torch

    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"unknown torch device '{setting}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{setting}' requested but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{setting}' requested but MPS is not available")
    return device


def load_encoder(folder: Path, device_setting: str, local_files_only: bool = True) -> tuple[Any, Any, torch.device]:
    """Fast tokenizer and encoder in eval mode on the resolved device."""
    from transformers import AutoModel, AutoTokenizer

    device = resolve_device(device_setting)
    has_safetensors = any(folder.glob("*.safetensors"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=local_files_only, use_fast=True)
        model = AutoModel.from_pretrained(
            folder, local_files_only=local_files_only, use_safetensors=True if has_safetensors else None
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{folder}: cannot load encoder: {' '.join(str(exc).split())[:300]}") from None
    if not getattr(tokenizer, "is_fast", False):
        log.warning("%s: no fast tokenizer; embedding will be slower", folder)
    return tokenizer, model.to(device).eval(), device


def mean_pool_normalize(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors the mask keeps, scaled to unit length (sentence-transformers' way)."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize((summed / counts).float(), p=2, dim=1)


def _check_texts(texts: Sequence[str]) -> Sequence[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts; use encode_one() for a single str")
    texts = texts if isinstance(texts, Sequence) else list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"encode() takes str texts, got {type(text).__name__}")
    return texts


# -- the disk cache ------------------------------------------------------------------------
class VectorCache:
    """float32 vectors by 32-byte key in one SQLite table; WAL lets processes share the file.

    The cache only ever saves work: if the file is unusable it logs a warning and reports
    misses, and the vectors are computed again.
    """

    LOOKUP_CHUNK = 500  # keys per SELECT ... IN (...), under SQLite's variable limit

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(CREATE_TABLE)
        except sqlite3.Error:
            self._conn.close()
            raise

    @classmethod
    def open(cls, path: Path) -> VectorCache | None:
        try:
            return cls(path)
        except (sqlite3.Error, OSError) as exc:
            log.warning("embedding cache %s unusable, running without it: %s", path, exc)
            return None

    def get_many(self, keys: Sequence[bytes], dimension: int) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``; blobs of the wrong size count as misses."""
        found: dict[bytes, np.ndarray] = {}
        try:
            with self._lock:
                for start in range(0, len(keys), self.LOOKUP_CHUNK):
                    chunk = keys[start : start + self.LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk)
                    for key, blob in rows:
                        if len(blob) == 4 * dimension:
                            found[key] = np.frombuffer(blob, dtype=np.float32)
        except sqlite3.Error as exc:
            log.warning("embedding cache %s: read failed, recomputing: %s", self.path, exc)
        return found

    def put_many(self, items: Iterable[tuple[bytes, np.ndarray]]) -> None:
        rows = [(key, np.ascontiguousarray(vector, dtype=np.float32).tobytes()) for key, vector in items]
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            log.warning("embedding cache %s: write failed, vectors not cached: %s", self.path, exc)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM vectors").fetchone()[0]

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM vectors")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
