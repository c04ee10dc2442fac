"""Versioned model registry.

CONTRACT:
    @dataclass class ModelCard:
        plugin: str; task: str; kind: str ("classification"|"biencoder"); backbone: str;
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
"""
