"""Versioned model registry.

CONTRACT:
    @dataclass class ModelCard:
        plugin: str; task: str; kind: str ("classification"|"biencoder"|"masked-lm"); backbone: str;
        data_fingerprint: str; hyperparameters: dict; metrics: dict; created_at: str (ISO UTC);
        train_examples: int; wall_seconds: float; labels: list[str] | None; notes: str = ""
    @dataclass class ModelVersion:
        plugin: str; task: str; version: int; path: Path; card: ModelCard; active: bool
        ref -> "plugin/task@vN"
    class ModelRegistry:
        def __init__(self, root: Path)                     # root/<plugin>/<task>/v0001/...
        def register(self, model_dir: Path, card: ModelCard, *, activate: bool = True) -> ModelVersion
              # moves/copies the save_pretrained folder in atomically (temp dir + rename)
        def list(self, plugin: str | None = None, task: str | None = None) -> list[ModelVersion]
        def get(self, plugin: str, task: str, version: int | None = None) -> ModelVersion  # None: active
        def active(self, plugin: str, task: str) -> ModelVersion | None
        def activate(self, plugin: str, task: str, version: int) -> ModelVersion
        def verify(self, version: ModelVersion) -> None     # ModelError if corrupt
    Only safetensors weights are accepted; loading never unpickles (no .bin/.pt).

Additions: ``register(..., move=False)``; ``register_result(result, plugin, task, kind=None,
backbone=None, labels=None, *, activate=True, notes="")`` builds the card from a
``TrainResult`` and moves its folder in; ``resolve(ref)`` and ``parse_ref(ref)`` read refs
like ``chatbot/intent@v3``, ``chatbot/intent@3`` or ``chatbot/intent`` (the active one);
``verify_folder(path)`` checks a folder before it is registered.

Layout::

    root/<plugin>/<task>/ACTIVE            "v0003": the version in use (replaced atomically)
    root/<plugin>/<task>/v0003/            the save_pretrained folder, plus
        model_card.json, README.md         the card, as data and for humans
        checksums.json                     sha256 of every model file, checked by verify()
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from services.errors import DataError, ModelError, NotFoundError

if TYPE_CHECKING:
    from services.training import TrainResult

log = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
README_FILE = "README.md"
CHECKSUM_FILE = "checksums.json"
ACTIVE_FILE = "ACTIVE"
# Registry files that are not part of the model, so not covered by the checksums.
META_FILES = frozenset({CARD_FILE, README_FILE, CHECKSUM_FILE})
# Formats that unpickle (run code) when loaded: never stored in the registry.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
VERSION_DIR = re.compile(r"^v(\d{4,})$")
REF_PATTERN = re.compile(r"^(?P<plugin>[^/@\s]+)/(?P<task>[^/@\s]+)(?:@v?(?P<version>\d+))?$")


@dataclass
class ModelCard:
    plugin: str
    task: str
    kind: str
    backbone: str
    data_fingerprint: str
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    created_at: str
    train_examples: int
    wall_seconds: float
    labels: list[str] | None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data) - {"notes"})
        if missing:
            raise ModelError(f"model card lacks {', '.join(missing)}")
        return cls(**{key: value for key, value in data.items() if key in names})

    def key_metrics(self) -> dict[str, float]:
        """The headline numbers: accuracy and macro F1, MRR and recall@1, or perplexity before and after."""
        wanted = {
            "classification": ("accuracy", "macro_f1", "teacher_accuracy"),
            "masked-lm": ("perplexity_before", "perplexity"),
        }.get(self.kind, ("mrr", "recall@1", "recall@10"))
        return {name: self.metrics[name] for name in wanted if isinstance(self.metrics.get(name), int | float)}


@dataclass
class ModelVersion:
    plugin: str
    task: str
    version: int
    path: Path
    card: ModelCard
    active: bool

    @property
    def ref(self) -> str:
        return f"{self.plugin}/{self.task}@v{self.version}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_ref(ref: str) -> tuple[str, str, int | None]:
    """``"chatbot/intent@v3"`` or ``"chatbot/intent@3"`` -> (plugin, task, 3); no version -> None."""
    match = REF_PATTERN.match(ref.strip())
    if not match:
        raise NotFoundError(f"bad model reference '{ref}': expected plugin/task or plugin/task@vN")
    version = match["version"]
    return match["plugin"], match["task"], int(version) if version else None


class ModelRegistry:
    """Numbered model versions per plugin and task, one of them active."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- writing ---------------------------------------------------------------------------
    def register(self, model_dir: Path, card: ModelCard, *, activate: bool = True, move: bool = False) -> ModelVersion:
        """Add ``model_dir`` as the next version of ``card.plugin``/``card.task``.

        The folder is copied (or moved, with ``move=True``) under a temporary name, the
        card and checksums are written, the result verified, and only then renamed to
        ``vNNNN``: a crash never leaves a half version visible. Pickle files are dropped.
        """
        _check_name("plugin", card.plugin)
        _check_name("task", card.task)
        source = Path(model_dir)
        verify_folder(source, strict=False)
        task_dir = self.root / card.plugin / card.task
        task_dir.mkdir(parents=True, exist_ok=True)
        temp = task_dir / f".tmp-{uuid.uuid4().hex}"
        moved = False
        try:
            if move:
                shutil.move(str(source), str(temp))
                moved = True
            else:
                shutil.copytree(source, temp, ignore=shutil.ignore_patterns(*META_FILES))
            _drop_pickles(temp)
            (temp / CHECKSUM_FILE).write_text(json.dumps(_checksums(temp), indent=2, sort_keys=True))
            with FileLock(str(task_dir / ".lock")):
                number = max(self._version_numbers(card.plugin, card.task), default=0) + 1
                final = task_dir / f"v{number:04d}"
                _write_card(temp, card, number)
                verify_folder(temp, card)
                os.rename(temp, final)
                moved = False
                if activate:
                    _write_atomically(task_dir / ACTIVE_FILE, f"v{number:04d}\n")
        finally:
            if moved and temp.exists() and not source.exists():
                shutil.move(str(temp), str(source))  # give the caller's folder back
            shutil.rmtree(temp, ignore_errors=True)
        log.info("registered %s/%s v%d at %s", card.plugin, card.task, number, final)
        return self.get(card.plugin, card.task, number)

    def register_result(
        self,
        result: TrainResult,
        plugin: str,
        task: str,
        kind: str | None = None,
        backbone: str | None = None,
        labels: list[str] | None = None,
        *,
        activate: bool = True,
        notes: str = "",
        move: bool = True,
    ) -> ModelVersion:
        """Register what ``TrainingEngine.train_*`` produced; its output folder is moved in."""
        card = ModelCard(
            plugin=plugin,
            task=task,
            kind=kind or result.kind,
            backbone=backbone or result.backbone,
            data_fingerprint=result.data_fingerprint,
            hyperparameters=dict(result.params),
            metrics=dict(result.metrics),
            created_at=now_iso(),
            train_examples=result.train_examples,
            wall_seconds=result.wall_seconds,
            labels=list(labels) if labels is not None else result.labels,
            notes=notes,
        )
        return self.register(result.model_dir, card, activate=activate, move=move)

    def activate(self, plugin: str, task: str, version: int) -> ModelVersion:
        """Make ``version`` the one in use, after checking it is intact."""
        chosen = self.get(plugin, task, version)
        self.verify(chosen)
        _write_atomically(self.root / plugin / task / ACTIVE_FILE, f"v{version:04d}\n")
        chosen.active = True
        return chosen

    def update_card(self, version: ModelVersion, *, metrics: dict[str, Any] | None = None) -> ModelVersion:
        """Merge ``metrics`` into a version's card (e.g. settings tuned after training); the
        weights and their checksums stay untouched."""
        card = replace(version.card, metrics={**version.card.metrics, **(metrics or {})})
        with FileLock(str(version.path.parent / ".lock")):
            temp = version.path / f".{CARD_FILE}.tmp-{uuid.uuid4().hex}"
            temp.write_text(json.dumps(card.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
            os.replace(temp, version.path / CARD_FILE)
            _write_atomically(version.path / README_FILE, render_readme(card, version.version))
        return self.get(version.plugin, version.task, version.version)

    # -- reading ---------------------------------------------------------------------------
    def list(self, plugin: str | None = None, task: str | None = None) -> list[ModelVersion]:
        """Every readable version, by plugin, task and version number."""
        versions = []
        for plugin_dir in self._children(self.root, plugin):
            for task_dir in self._children(plugin_dir, task):
                active = self._active_number(task_dir)
                for number in sorted(self._version_numbers(plugin_dir.name, task_dir.name)):
                    try:
                        versions.append(self._load(plugin_dir.name, task_dir.name, number, active))
                    except ModelError as exc:
                        log.warning("skipping %s", exc)
        return versions

    def get(self, plugin: str, task: str, version: int | None = None) -> ModelVersion:
        """One version; ``version=None`` means the active one."""
        numbers = self._version_numbers(plugin, task) if _valid_name(plugin) and _valid_name(task) else []
        if not numbers:
            raise NotFoundError(f"no model registered for {plugin}/{task}")
        task_dir = self.root / plugin / task
        active = self._active_number(task_dir)
        if version is None:
            if active is None:
                raise NotFoundError(
                    f"{plugin}/{task} has no active version (activate one with 'suite models activate')"
                )
            version = active
        if version not in numbers:
            listed = ", ".join(f"v{n}" for n in sorted(numbers))
            raise NotFoundError(f"{plugin}/{task} has no version {version} (versions: {listed})")
        return self._load(plugin, task, version, active)

    def active(self, plugin: str, task: str) -> ModelVersion | None:
        try:
            return self.get(plugin, task)
        except NotFoundError:
            return None

    def resolve(self, ref: str) -> ModelVersion:
        """A version by reference: ``plugin/task@vN``, ``plugin/task@N`` or ``plugin/task`` (active)."""
        return self.get(*parse_ref(ref))

    def verify(self, version: ModelVersion) -> None:
        """Raise :class:`ModelError` unless the version's folder is complete, intact and loadable."""
        verify_folder(version.path, version.card)

    # -- internals -------------------------------------------------------------------------
    def _children(self, parent: Path, name: str | None) -> list[Path]:
        if name is not None:
            path = parent / name
            return [path] if _valid_name(name) and path.is_dir() else []
        if not parent.is_dir():
            return []
        return sorted(p for p in parent.iterdir() if p.is_dir() and _valid_name(p.name))

    def _version_numbers(self, plugin: str, task: str) -> list[int]:
        task_dir = self.root / plugin / task
        if not task_dir.is_dir():
            return []
        return [int(m[1]) for p in task_dir.iterdir() if (m := VERSION_DIR.match(p.name)) and p.is_dir()]

    def _active_number(self, task_dir: Path) -> int | None:
        try:
            match = VERSION_DIR.match((task_dir / ACTIVE_FILE).read_text().strip())
        except OSError:
            return None
        return int(match[1]) if match else None

    def _load(self, plugin: str, task: str, number: int, active: int | None) -> ModelVersion:
        path = self.root / plugin / task / f"v{number:04d}"
        return ModelVersion(plugin, task, number, path, read_card(path), active == number)


def read_card(folder: Path) -> ModelCard:
    try:
        data = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{folder}: no {CARD_FILE}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder}/{CARD_FILE}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{folder}/{CARD_FILE}: not a JSON object")
    try:
        return ModelCard.from_dict(data)
    except ModelError as exc:
        raise ModelError(f"{folder}/{CARD_FILE}: {exc}") from None


def verify_folder(folder: Path, card: ModelCard | None = None, *, strict: bool = True) -> None:
    """Check a model folder: config, tokenizer, safetensors headers, labels, and when ``strict``
    (a registered version) also that it holds no pickle files and matches its checksums."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: model folder not found")
    config = _read_json(folder / "config.json", "model config")
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelError(f"{folder}/config.json: not a transformers config (no model_type)")
    pickles = sorted(p.name for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles and strict:
        raise ModelError(f"{folder}: holds pickle files ({pickles[0]}); only safetensors weights are accepted")
    _check_tokenizer(folder)
    _check_weights(folder)
    if strict and (folder / CHECKSUM_FILE).is_file():
        expected = _read_json(folder / CHECKSUM_FILE, "checksums")
        actual = _checksums(folder)
        for name in sorted(set(expected) | set(actual)):
            if name not in actual:
                raise ModelError(f"{folder}: {name} is missing")
            if expected.get(name) != actual[name]:
                raise ModelError(f"{folder}: {name} changed since it was registered (checksum mismatch)")
    if card is not None and card.kind == "classification" and card.labels:
        id2label = config.get("id2label") or {}
        saved = [id2label.get(str(i)) for i in range(len(id2label))]
        if saved != list(card.labels):
            raise ModelError(f"{folder}: config labels {saved[:5]} do not match the card's {card.labels[:5]}")


def _check_tokenizer(folder: Path) -> None:
    if not (folder / "tokenizer_config.json").is_file():
        raise ModelError(f"{folder}: no tokenizer (tokenizer_config.json missing)")
    _read_json(folder / "tokenizer_config.json", "tokenizer config")
    present = [name for name in TOKENIZER_FILES if (folder / name).is_file()]
    if not present:
        raise ModelError(f"{folder}: no tokenizer vocabulary (one of {', '.join(TOKENIZER_FILES)})")
    if "tokenizer.json" in present:
        _read_json(folder / "tokenizer.json", "tokenizer")


def _check_weights(folder: Path) -> None:
    from safetensors import SafetensorError, safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set((_read_json(index, "weights index").get("weight_map") or {}).values()))
    else:
        shards = ["model.safetensors"]
    for shard in shards:
        path = folder / shard
        if not path.is_file():
            raise ModelError(f"{folder}: no {shard} weights")
        try:
            with safe_open(str(path), framework="np") as handle:
                if not list(handle.keys()):
                    raise ModelError(f"{path}: holds no tensors")
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path}: corrupt safetensors file ({' '.join(str(exc).split())})") from None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: no {path.name} ({what})") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable {what} ({' '.join(str(exc).split())})") from None


def _checksums(folder: Path) -> dict[str, str]:
    sums = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_file() and name not in META_FILES:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            sums[name] = digest.hexdigest()
    return sums


def _drop_pickles(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in PICKLE_SUFFIXES:
            path.unlink()


def _valid_name(name: str) -> bool:
    return bool(NAME_PATTERN.match(name))


def _check_name(what: str, name: str) -> None:
    if not _valid_name(name):
        raise DataError(f"invalid {what} name '{name}': use letters, digits, '-' and '_'")


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    temp.write_text(text)
    os.replace(temp, path)


def _write_card(folder: Path, card: ModelCard, version: int) -> None:
    (folder / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / README_FILE).write_text(render_readme(card, version), encoding="utf-8")


def render_readme(card: ModelCard, version: int) -> str:
    """The card as a Markdown page for humans (the Hugging Face model-card layout)."""
    lines = [
        f"# {card.plugin}/{card.task} v{version}",
        "",
        f"A **{card.kind}** model {'pre-trained' if card.kind == 'masked-lm' else 'fine-tuned'} by the suite for "
        f"the `{card.plugin}` plugin's `{card.task}` task.",
        "",
        "| | |",
        "|---|---|",
        f"| backbone | `{card.backbone}` |",
        f"| created | {card.created_at} |",
        f"| training examples | {card.train_examples} |",
        f"| training time | {card.wall_seconds:.1f} s |",
        f"| data fingerprint | `{card.data_fingerprint[:16]}` |",
        "",
        "## Metrics",
        "",
    ]
    scalars = {k: v for k, v in card.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    where = card.metrics.get("evaluated_on")
    if where:
        lines += [f"Measured on the {where} data.", ""]
    teacher = card.metrics.get("teacher")
    if isinstance(teacher, dict) and teacher.get("name"):
        lines += [
            f"Distilled from `{teacher['name']}`: teacher accuracy {teacher.get('accuracy', 0):.4f}, macro F1 "
            f"{teacher.get('macro_f1', 0):.4f}; this model {card.metrics.get('accuracy', 0):.4f} and "
            f"{card.metrics.get('macro_f1', 0):.4f}, on the same {where or 'validation'} data.",
            "",
        ]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in scalars.items()]
    per_label = card.metrics.get("per_label")
    if isinstance(per_label, dict) and per_label:
        lines += ["", "### Per label", "", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        for label, row in per_label.items():
            lines.append(
                f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
            )
    if card.labels:
        lines += ["", "## Labels", "", ", ".join(f"`{label}`" for label in card.labels)]
    lines += ["", "## Hyper-parameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card.hyperparameters.items()]
    lines += ["", "## Usage", "", "```python"]
    if card.kind == "masked-lm":
        lines += [
            "# the plugin's next fine-tune starts from this backbone while it is active; or by hand:",
            'engine.train_classifier("path/to/this/folder", rows, ...)',
        ]
    elif card.kind == "classification":
        lines += [
            "from services.training import TextClassifier",
            "",
            'classifier = TextClassifier.from_pretrained("path/to/this/folder")',
            'classifier.predict(["some text"])',
            '# or: transformers.pipeline("text-classification", model="path/to/this/folder")',
        ]
    else:
        lines += [
            "from services.embeddings import Embedder",
            "",
            'embedder = Embedder("path/to/this/folder")  # mean pooling + L2 normalisation',
            'embedder.encode(["some text"])',
        ]
    lines += ["```"]
    if card.notes:
        lines += ["", "## Notes", "", card.notes]
    return "\n".join(lines) + "\n"
