"""A linear adapter on the encoder's item vectors, trained on every user's pairs with hard negatives.

On a CPU, fine-tuning the transformer itself gets through a few thousand pairs an hour;
a real catalogue has hundreds of thousands. With the encoder fixed, its catalogue vectors
are computed once (the index needs them anyway) and a ``d x d`` map ``W = I + A`` trained
on them sees every user's pairs, epoch after epoch, in minutes: contrastive loss with
in-batch negatives plus hard negatives -- items close to the query under the current map
that the user did not choose -- mined again before every epoch. Epochs stop on the same
validation recall as the encoder's.

Mean pooling is linear, so the map applies after pooling: the saved model is the encoder
folder plus a sentence-transformers ``Dense`` module (``2_Dense``), which
``services.embeddings.Embedder`` applies before normalising; sentence-transformers loads
the same folder.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plugins.recommender.options import TrainingOptions

DENSE_DIR = "2_Dense"
SCALE = 20.0  # cosine x scale = logits (sentence-transformers' default for this loss)
NEIGHBOURS = 20  # hard negatives are drawn from this many nearest items of the query
MINING_CHUNK = 2048


@dataclass
class AdapterEpoch:
    epoch: int
    pairs: int
    seconds: float
    recall: float | None


@dataclass
class AdapterResult:
    weight: np.ndarray | None  # (d, d), None when no epoch beat the encoder alone
    baseline: float | None  # validation recall of the encoder alone
    best: float | None
    epochs: list[AdapterEpoch] = field(default_factory=list)

    @property
    def pairs_per_second(self) -> float:
        seconds = sum(epoch.seconds for epoch in self.epochs)
        return sum(epoch.pairs for epoch in self.epochs) / seconds if seconds else 0.0


def item_pairs(
    histories: Mapping[str, Sequence[int]], window: int, per_user: int, max_pairs: int, seed: str
) -> np.ndarray:
    """(user number, earlier row, later row) triples, at most ``per_user`` per user, ``max_pairs`` in all."""
    rng = random.Random(seed)
    triples: list[tuple[int, int, int]] = []
    for number, user in enumerate(sorted(histories)):
        rows = list(dict.fromkeys(histories[user]))
        mine = [(number, rows[j], rows[i]) for i in range(1, len(rows)) for j in range(max(0, i - window), i)]
        triples.extend(rng.sample(mine, per_user) if len(mine) > per_user else mine)
    if len(triples) > max_pairs:
        triples = rng.sample(triples, max_pairs)
    return np.asarray(triples, dtype=np.int64).reshape(-1, 3)


def history_examples(
    histories: Mapping[str, Sequence[int]], window: int, per_user: int, max_examples: int, seed: str
) -> tuple[np.ndarray, np.ndarray]:
    """(the ``window`` rows before an item, padded with -1; the item's row): a history query as served
    (the profile is the mean of the history's item vectors) and the item chosen next."""
    rng = random.Random(seed)
    examples: list[tuple[list[int], int]] = []
    for user in sorted(histories):
        rows = list(dict.fromkeys(histories[user]))
        mine = [(rows[max(0, i - window) : i], rows[i]) for i in range(1, len(rows))]
        examples.extend(rng.sample(mine, per_user) if len(mine) > per_user else mine)
    if len(examples) > max_examples:
        examples = rng.sample(examples, max_examples)
    before = np.full((len(examples), window), -1, dtype=np.int64)
    for n, (rows, _) in enumerate(examples):
        before[n, : len(rows)] = rows
    return before, np.asarray([item for _, item in examples], dtype=np.int64)


def adapt(vectors: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
    """Unit vectors after the map (the vectors themselves without one)."""
    if weight is None:
        return vectors
    mapped = np.asarray(vectors, dtype=np.float32) @ weight.T
    return mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-12)


def mine_hard_negatives(
    vectors: np.ndarray, triples: np.ndarray, seen: Sequence[set[int]], rng: np.random.Generator
) -> np.ndarray:
    """Per triple, one of the query's nearest items that its user never chose (-1 where none is left)."""
    queries = np.unique(triples[:, 1])
    nearest: dict[int, np.ndarray] = {}
    top = min(NEIGHBOURS + 1, len(vectors))
    for start in range(0, len(queries), MINING_CHUNK):
        chunk = queries[start : start + MINING_CHUNK]
        scores = vectors[chunk] @ vectors.T
        best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
        for row, query in enumerate(chunk):
            nearest[int(query)] = best[row]
    negatives = np.full(len(triples), -1, dtype=np.int64)
    for i, (user, query, _) in enumerate(triples):
        options = [int(item) for item in nearest[int(query)] if item != query and item not in seen[user]]
        if options:
            negatives[i] = options[int(rng.integers(len(options)))]
    return negatives


def train_adapter(
    vectors: np.ndarray,
    histories: Mapping[str, Sequence[int]],
    options: TrainingOptions,
    score: Callable[[np.ndarray | None], float] | None = None,
    *,
    progress: bool = True,
) -> AdapterResult:
    """Fit ``W = I + A`` on pairs of catalogue rows from ``histories`` (rows of ``vectors``, unit length).

    ``score(weight)`` is the validation recall of the catalogue mapped by ``weight`` (None:
    the encoder alone); without it every epoch runs and the last map is kept.
    """
    import torch

    threads = torch.get_num_threads()
    # The steps are small matrix products: a second thread costs more in synchronisation than it
    # saves (8x slower per step with two threads on a busy 2-core CPU, measured).
    torch.set_num_threads(1)
    try:
        return _train(vectors, histories, options, score, progress)
    finally:
        torch.set_num_threads(threads)


def _train(vectors, histories, options: TrainingOptions, score, progress: bool) -> AdapterResult:
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    base = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    dimension = base.shape[1]
    delta = torch.zeros(dimension, dimension, requires_grad=True)
    optimizer = torch.optim.AdamW([delta], lr=options.adapter_learning_rate, weight_decay=options.adapter_weight_decay)
    seen = [set(histories[user]) for user in sorted(histories)]
    result = AdapterResult(None, None, None)
    result.baseline = result.best = score(None) if score else None
    stalled = 0
    bar = tqdm(total=options.adapter_epochs, desc="fine-tuning (adapter)", unit="epoch", disable=not progress)

    def weight() -> np.ndarray:
        return (torch.eye(dimension) + delta).detach().numpy().copy()

    try:
        for epoch in range(options.adapter_epochs):
            started = time.perf_counter()
            triples = item_pairs(
                histories,
                options.history_window,
                options.adapter_pairs_per_user,
                options.adapter_max_pairs,
                f"{options.seed}:adapter:{epoch}",
            )
            negatives = None
            if options.hard_negatives and len(triples):
                negatives = mine_hard_negatives(adapt(vectors, weight()), triples, seen, rng)
            before = chosen = None
            if options.adapter_history_queries:
                before, chosen = history_examples(
                    histories,
                    options.history_window,
                    max(1, options.adapter_pairs_per_user // options.history_window),
                    options.adapter_max_pairs,
                    f"{options.seed}:history:{epoch}",
                )
                history_order = rng.permutation(len(chosen))
            order = rng.permutation(len(triples))
            steps = max(1, -(-len(order) // options.adapter_batch_size))
            for step in range(steps):
                batch = order[step * options.adapter_batch_size : (step + 1) * options.adapter_batch_size]
                loss = _loss(base, delta, triples[batch], None if negatives is None else negatives[batch])
                if before is not None and len(chosen):
                    size = -(-len(chosen) // steps)
                    rows = history_order[step * size : (step + 1) * size]
                    if len(rows) > 1:
                        loss = loss + _history_loss(base, delta, before[rows], chosen[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            seconds = time.perf_counter() - started
            current = weight()
            recall = score(current) if score else None
            result.epochs.append(AdapterEpoch(epoch + 1, len(triples), seconds, recall))
            postfix = {"pairs_s": f"{len(triples) / max(seconds, 1e-9):.0f}"}
            if recall is not None:
                postfix["val_recall"] = f"{recall:.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if recall is None or result.best is None or recall > result.best:
                result.weight, result.best, stalled = current, recall, 0
                continue
            stalled += 1
            if options.early_stopping_patience and stalled >= options.early_stopping_patience:
                break
    finally:
        bar.close()
    return result


def _loss(base, delta, triples: np.ndarray, negatives: np.ndarray | None):
    """Symmetric in-batch contrastive loss, queries also against their hard negatives."""
    import torch
    import torch.nn.functional as F

    def mapped(rows: np.ndarray) -> torch.Tensor:
        x = base[torch.from_numpy(rows)]
        return F.normalize(x + x @ delta.T, dim=-1)

    queries, positives = triples[:, 1], triples[:, 2]
    q, p = mapped(queries), mapped(positives)
    candidates = [positives]
    tensors = [p]
    if negatives is not None and (negatives >= 0).any():
        valid = negatives >= 0
        candidates.append(negatives[valid])
        tensors.append(mapped(negatives[valid]))
    items = torch.from_numpy(np.concatenate(candidates))
    logits = q @ torch.cat(tensors).T * SCALE
    n = len(triples)
    # A candidate that is this query's own positive item (a duplicate elsewhere) or the query item is no negative.
    own = torch.from_numpy(positives)[:, None] == items[None, :]
    own |= torch.from_numpy(queries)[:, None] == items[None, :]
    own[torch.arange(n), torch.arange(n)] = False
    target = torch.arange(n)
    loss = F.cross_entropy(logits.masked_fill(own, float("-inf")), target)
    back = (p @ q.T * SCALE).masked_fill(own[:, :n].T, float("-inf"))
    return (loss + F.cross_entropy(back, target)) / 2


def _history_loss(base, delta, before: np.ndarray, chosen: np.ndarray):
    """In-batch contrastive loss of served profiles (mean of the history's mapped unit vectors) against
    the item chosen next."""
    import torch
    import torch.nn.functional as F

    valid = torch.from_numpy(before >= 0)
    x = base[torch.from_numpy(np.maximum(before, 0))]
    items = F.normalize(x + x @ delta.T, dim=-1) * valid.unsqueeze(-1)
    profiles = F.normalize(items.sum(dim=1), dim=-1)
    y = base[torch.from_numpy(chosen)]
    targets = F.normalize(y + y @ delta.T, dim=-1)
    keys = torch.from_numpy(chosen)
    duplicate = keys[:, None] == keys[None, :]
    duplicate.fill_diagonal_(False)
    logits = (profiles @ targets.T * SCALE).masked_fill(duplicate, float("-inf"))
    return F.cross_entropy(logits, torch.arange(len(chosen)))


# -- the saved model -----------------------------------------------------------------------------------------
def save_adapter(folder: Path, weight: np.ndarray) -> None:
    """Add ``weight`` to a model folder as a sentence-transformers Dense module between pooling and normalising."""
    from safetensors.numpy import save_file

    dense = Path(folder) / DENSE_DIR
    dense.mkdir(parents=True, exist_ok=True)
    out_features, in_features = weight.shape
    config = {
        "in_features": int(in_features),
        "out_features": int(out_features),
        "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity",
    }
    (dense / "config.json").write_text(json.dumps(config, indent=2))
    save_file({"linear.weight": np.ascontiguousarray(weight, dtype=np.float32)}, str(dense / "model.safetensors"))
    modules_file = Path(folder) / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.exists() else []
    modules = [m for m in modules if not m.get("type", "").endswith(("models.Dense", "models.Normalize"))]
    if not modules:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ]
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": DENSE_DIR, "type": DENSE_TYPE})
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "3_Normalize", "type": NORMALIZE_TYPE})
    (Path(folder) / "3_Normalize").mkdir(exist_ok=True)
    modules_file.write_text(json.dumps(modules, indent=2))


DENSE_TYPE = "sentence_transformers.models.Dense"
NORMALIZE_TYPE = "sentence_transformers.models.Normalize"
