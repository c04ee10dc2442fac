"""One fine-tuning engine for every plugin, and the inference wrappers for its models.

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
"""
