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
"""
