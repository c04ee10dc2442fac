"""One fine-tuning engine for every plugin, and the inference wrappers for its models.

Layout, bottom first (no module imports one above it; ``tests/training/test_training_modules.py``
checks there is no import circle):

    params.py      TrainParams, ResolvedParams, resolve_params(): hyper-parameters and their defaults
    folders.py     device, refusing pickles, tokenizer loading, atomic folder writes
    data.py, metrics.py, batching.py, layers.py, checkpoint.py, pooling.py
    task.py        the Task interface: what the loop needs of a task
    tasks/         one module per task: classification, biencoder, masked_lm, distillation
    loop.py        TrainingRun: optimiser, schedule, evaluation, early stopping, checkpoints (knows only Task)
    engine.py      TrainingEngine: builds a task, runs the loop, saves the model
    padding.py, serving.py          serving without torch: numpy batches, OnnxClassifier
    loading.py                      load_classifier(): the saved ONNX graph or torch
    probes.py, inference.py, onnx_runtime.py   serving with torch, exporting the ONNX serving graph

CONTRACT (implemented in engine.py, data.py, metrics.py, inference.py):

    @dataclass class LabeledText: text: str; label: str
    @dataclass class TextPair:    query: str; positive: str      # bi-encoder training pair

    class TrainParams(BaseModel):  every field optional; None = TrainingConfig default
        learning_rate, batch_size, epochs, warmup_ratio, weight_decay, max_length, seed,
        early_stopping_patience, strategy ("full"|"freeze"|"gradual"), freeze_layers,
        max_steps: int | None, eval_every: int | None (steps; default once per epoch)

    @dataclass class TrainResult:
        model_dir: Path             # save_pretrained output (safetensors + tokenizer + label maps)
        metrics: dict[str, Any]     # accuracy, precision, recall, macro_f1, confusion_matrix, labels,
                                    # (bi-encoder: recall@1, recall@10, mrr on val pairs)
        params: dict[str, Any]; train_examples: int; wall_seconds: float; data_fingerprint: str

    class TrainingEngine:
        def __init__(self, config: TrainingConfig, *, allow_downloads: bool = False)
        def train_classifier(self, backbone: str, train: Sequence[LabeledText],
                             validation: Sequence[LabeledText] | None = None,
                             params: TrainParams | dict | None = None, *,
                             output_dir: Path, checkpoint_dir: Path | None = None,
                             progress: bool = True) -> TrainResult
        def train_biencoder(self, backbone: str, pairs: Sequence[TextPair],
                            validation: Sequence[TextPair] | None = None,
                            params=None, *, output_dir: Path, checkpoint_dir=None,
                            progress: bool = True) -> TrainResult

    class TextClassifier:                 # fast inference on a saved classifier
        @classmethod from_pretrained(cls, path, *, device="auto", max_length=128) -> TextClassifier
        labels: list[str]
        def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[Prediction]
        def predict_proba(self, texts, batch_size=64) -> np.ndarray   # (n, n_labels)
    @dataclass class Prediction: label: str; score: float; scores: dict[str, float]

    def split_train_validation(rows, fraction=0.1, seed=42, stratify=True) -> (train, val)

    Additions (beyond the contract, all optional): TrainParams fields min_steps,
    head_init ("auto" | "random" | "centroids": a classifier head imprinted from class means
    of the backbone's features, by default below 50 examples per label), pooling ("auto" |
    "model" | "mean": the head on the architecture's own pooled output or on the masked mean of
    the token vectors, see pooling.py; auto means "mean" for sentence-transformers backbones
    trained with mean pooling), head_lr_multiplier,
    early_stopping_metric, checkpoint_every, unfreeze_every,
    similarity_scale, symmetric_loss; train_* keyword callback(StepInfo) called after every step;
    TrainResult fields kind, backbone, labels, steps, history, resumed_from_step;
    eval_every's default is once per epoch but at most ~10 evaluations a run (small data
    sets get min_steps steps, i.e. many tiny epochs);
    a bi-encoder with validation pairs is scored before training (metrics["baseline"]) and
    keeps the backbone's weights if training never beats them; without validation data the
    final metrics are measured on (up to 2000) training examples, metrics["evaluated_on"]
    says which; TextClassifier.from_pretrained(..., quantize=False, runtime="torch"|"onnx",
    precision="float32"|"bfloat16"|"auto"); load_labeled_file,
    load_pair_file, data_fingerprint; classification_metrics, retrieval_metrics, confusion_matrix.

    Any encoder works as backbone (BERT, MPNet, RoBERTa...: layer names for freezing come from
    the model, token type ids are never sent). TrainingEngine.train_masked_lm(backbone, texts,
    validation_texts, params, *, output_dir, ...) continues pre-training with whole-word
    masking (TrainParams.mlm_probability); train_classifier with TrainParams.teacher (a
    classifier folder with the same labels), distill_temperature and distill_alpha distils,
    optionally over transfer_texts=[...] (teacher scores cached by text hash in the engine's
    cache_dir); TrainingEngine.overriding(params, transfer_texts=...) forces parameters on
    every run inside a block. load_text_file reads unlabelled texts (txt, CSV, JSONL).
    TextClassifier.from_pretrained(..., runtime="onnx", quantize=True) runs int8 ONNX.

    A trained classifier folder also holds model.onnx (TrainingConfig.serving_graph): its
    logits and pooled features as an ONNX graph. loading.load_classifier(path, ...) opens it
    with ONNX Runtime and the tokenizers library (no torch import) where runtime "auto"
    allows (CPU, float32, no int8), else a TextClassifier.
"""

from services.training.data import (
    LabeledText,
    TextPair,
    check_classification_data,
    check_pair_data,
    data_fingerprint,
    load_labeled_file,
    load_pair_file,
    load_text_file,
    split_train_validation,
    text_fingerprint,
)
from services.training.metrics import classification_metrics, confusion_matrix, retrieval_metrics

__all__ = [
    "LabeledText",
    "Prediction",
    "ResolvedParams",
    "StepInfo",
    "TextClassifier",
    "TextPair",
    "TrainParams",
    "TrainResult",
    "TrainingEngine",
    "check_classification_data",
    "check_pair_data",
    "classification_metrics",
    "confusion_matrix",
    "data_fingerprint",
    "load_labeled_file",
    "load_pair_file",
    "load_text_file",
    "retrieval_metrics",
    "split_train_validation",
    "text_fingerprint",
]

# torch and transformers load on first use of these names, so that reading data files or
# listing models stays fast.
_LAZY = {
    "TrainingEngine": "services.training.engine",
    "TrainParams": "services.training.params",
    "TrainResult": "services.training.engine",
    "ResolvedParams": "services.training.params",
    "StepInfo": "services.training.loop",
    "TextClassifier": "services.training.inference",
    "Prediction": "services.training.inference",
}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'services.training' has no attribute {name!r}")
