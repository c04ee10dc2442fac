"""Text normalisation before tokenisation: Unicode, HTML, masking, whitespace."""

from __future__ import annotations

import unicodedata
from html.parser import HTMLParser
from typing import Literal

import regex

UnicodeForm = Literal["NFC", "NFD", "NFKC", "NFKD"]
UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")

URL_MASK, EMAIL_MASK, NUMBER_MASK = "<URL>", "<EMAIL>", "<NUM>"

# A URL needs a scheme or "www."; trailing sentence punctuation is not part of it.
URL_RE = regex.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]", regex.IGNORECASE)
EMAIL_RE = regex.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")
# 42, -3.5, 1,234.56, 6.02e23: not digits glued to letters (COVID19, 3rd) nor inside versions (v1.2).
NUMBER_RE = regex.compile(r"(?<![\w.,])(?:[-+](?=\d))?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?!\w)")
# Control and format characters, except the whitespace controls and the joiners scripts need.
INVISIBLE_RE = regex.compile(r"(?![\t\n\r\f\v\u200c\u200d])[\p{Cc}\p{Cf}\p{Cs}]")


def normalize_text(
    text: str,
    *,
    unicode_form: UnicodeForm | None = "NFKC",
    strip_html: bool = True,
    mask_urls: bool = False,
    mask_emails: bool = False,
    mask_numbers: bool = False,
    lowercase: bool = False,
    collapse_whitespace: bool = True,
) -> str:
    """Clean one text for NLP models.

    In order: HTML to text (entities unescaped, script/style dropped), Unicode
    normalisation, control/format characters removed, lowercasing, masking of URLs,
    e-mails and numbers (``<URL>``, ``<EMAIL>``, ``<NUM>``), whitespace collapsed to
    single spaces. Lowercasing comes before masking so the masks keep their case.
    """
    if unicode_form is not None and unicode_form not in UNICODE_FORMS:
        raise ValueError(f"unicode_form must be one of {', '.join(UNICODE_FORMS)} or None, not {unicode_form!r}")
    if strip_html:
        text = html_to_text(text)
    if unicode_form is not None:
        text = unicodedata.normalize(unicode_form, text)
    text = INVISIBLE_RE.sub("", text)
    if lowercase:
        text = text.lower()
    if mask_urls:
        text = URL_RE.sub(URL_MASK, text)
    if mask_emails:
        text = EMAIL_RE.sub(EMAIL_MASK, text)
    if mask_numbers:
        text = NUMBER_RE.sub(NUMBER_MASK, text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text


def html_to_text(text: str) -> str:
    """The visible text of an HTML fragment; plain text without markup comes back unchanged."""
    if "<" not in text and "&" not in text:
        return text
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


class _TextExtractor(HTMLParser):
    """Collects text nodes (entities unescaped), skipping invisible elements."""

    HIDDEN = frozenset({"script", "style", "template", "noscript", "title"})
    # Elements that separate words visually; without a break "<p>a</p><p>b</p>" would read "ab".
    BREAKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
            "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol",
            "p", "pre", "section", "table", "td", "th", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden_depth += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)
