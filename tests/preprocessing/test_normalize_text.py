"""normalize_text: HTML, Unicode, invisible characters, masks, whitespace."""

from __future__ import annotations

import pytest

from services.preprocessing import html_to_text, normalize_text


def test_html_is_reduced_to_its_visible_text() -> None:
    html = (
        "<html><head><title>Page</title><style>p { color: red }</style></head><body>"
        "<h1>Fees</h1><p>Tom &amp; Jerry&nbsp;pay &pound;5 &lt;monthly&gt;.</p>"
        "<script>var secret = 'do not show';</script><ul><li>one</li><li>two</li></ul>"
        "<!-- a comment --><p>Caf&#233; <b>open</b><br>late</p></body></html>"
    )
    assert normalize_text(html) == "Fees Tom & Jerry pay £5 <monthly>. one two Café open late"


def test_block_tags_separate_words_and_plain_text_is_untouched() -> None:
    assert normalize_text("<p>first</p><p>second</p><div>third</div>") == "first second third"
    assert html_to_text("5 < 6 and AT&T > 4") == "5 < 6 and AT&T > 4"
    assert normalize_text("<b>bold</b>", strip_html=False) == "<b>bold</b>"


def test_unicode_normalisation_forms() -> None:
    text = "ｆｕｌｌ ﬁle Ⅻ e\u0301"
    assert normalize_text(text) == "full file XII é"  # NFKC: compatibility + composed
    assert normalize_text(text, unicode_form="NFC") == "ｆｕｌｌ ﬁle Ⅻ é"
    assert normalize_text("é", unicode_form="NFD") == "e\u0301"
    assert normalize_text(text, unicode_form=None) == text
    with pytest.raises(ValueError, match="unicode_form"):
        normalize_text("x", unicode_form="NFX")  # type: ignore[arg-type]


def test_control_and_format_characters_are_removed() -> None:
    text = "zero\u200bwidth soft\u00adhyphen\x00nul\x07bell \ufeffbom tab\there\r\nline"
    assert normalize_text(text) == "zerowidth softhyphennulbell bom tab here line"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # the joiner keeps the emoji sequence intact
    assert normalize_text(family) == family


def test_urls_emails_and_numbers_are_masked_on_request() -> None:
    text = (
        "Mail john.doe+bank@mail.example.co.uk or see https://example.com/a?b=1&c=2. "
        "Also www.bank.org/fees, (http://x.io/p). It costs $1,234.56, -3.5% or 1.5e10 on 2024-03-01."
    )
    masked = normalize_text(text, mask_urls=True, mask_emails=True, mask_numbers=True)
    assert masked == (
        "Mail <EMAIL> or see <URL>. Also <URL>, (<URL>). It costs $<NUM>, <NUM>% or <NUM> on <NUM>-<NUM>-<NUM>."
    )
    assert normalize_text(text) == " ".join(text.split())  # nothing masked by default


def test_numbers_inside_words_are_not_masked() -> None:
    assert normalize_text("COVID19 on the 3rd of v1.2 costs 42", mask_numbers=True) == (
        "COVID19 on the 3rd of v1.2 costs <NUM>"
    )


def test_lowercase_keeps_masks_upper_case() -> None:
    result = normalize_text(
        "Visit HTTPS://Example.COM Now, Call 555", lowercase=True, mask_urls=True, mask_numbers=True
    )
    assert result == "visit <URL> now, call <NUM>"


def test_whitespace_collapsing_is_optional() -> None:
    assert normalize_text("  a \n\n b\t c  ") == "a b c"
    assert normalize_text("a \n b", collapse_whitespace=False) == "a \n b"
