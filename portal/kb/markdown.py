"""Markdown to safe HTML (python-markdown, then the nh3 sanitiser) and to plain text for search."""

from __future__ import annotations

import html
import re
import threading
from dataclasses import dataclass

import markdown
import nh3
from markdown.extensions.toc import slugify_unicode
from markupsafe import Markup

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt",
    "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre",
    "s", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
    "td": {"align"}, "th": {"align"},
    "code": {"class"},
    "div": {"class"},
}
# The only classes the renderer itself writes: fenced code's language and the [TOC] block.
# Any other class in an article (raw HTML) could borrow the page's own styles ("flash",
# "button", "visually-hidden"...) to fake a notice or hide text, so it is dropped.
RENDERER_CLASSES = {
    "code": re.compile(r"language-[\w+#.-]{1,40}"),
    "div": re.compile(r"toc"),
}
URL_SCHEMES = {"http", "https", "mailto"}
# A table of contents is worth showing once an article has this many headings.
TOC_MIN_HEADINGS = 3


@dataclass
class Rendered:
    html: Markup
    toc: list[dict]  # [{"id", "name", "level"}] for h2/h3 headings

    @property
    def show_toc(self) -> bool:
        return len(self.toc) >= TOC_MIN_HEADINGS


def _flatten_toc(tokens: list[dict], out: list[dict]) -> list[dict]:
    for token in tokens:
        if token["level"] in (2, 3):
            out.append({"id": token["id"], "name": html.unescape(token["name"]),
                        "level": token["level"]})
        _flatten_toc(token.get("children", []), out)
    return out


def _heading_id(value: str, separator: str) -> str:
    """Heading anchors get a prefix so they never collide with the page's own ids."""
    return "h-" + slugify_unicode(value, separator)


def _renderer_classes_only(tag: str, attribute: str, value: str) -> str | None:
    """nh3 attribute filter: of a `class`, keep only the names in RENDERER_CLASSES."""
    if attribute != "class":
        return value
    pattern = RENDERER_CLASSES.get(tag)
    kept = [name for name in value.split() if pattern is not None and pattern.fullmatch(name)]
    return " ".join(kept) or None


def render_markdown(text: str) -> Rendered:
    """Article Markdown -> sanitised HTML with heading anchors, plus the table of contents."""
    md = markdown.Markdown(
        extensions=["tables", "fenced_code", "toc", "sane_lists"],
        extension_configs={"toc": {"toc_depth": "2-3", "slugify": _heading_id}},
        output_format="html",
    )
    raw = md.convert(text or "")
    clean = nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_renderer_classes_only,
    )
    return Rendered(html=Markup(clean), toc=_flatten_toc(md.toc_tokens, []))  # noqa: S704


_WHITESPACE = re.compile(r"\s+")
# Where one block of text ends and the next begins. Only these become breaks in plain text:
# inline tags (links, emphasis, code) sit inside a sentence and must leave no gap, or
# "see [this](…)." would read "see this ." in a snippet.
_BLOCK_END = re.compile(
    r"</(?:p|li|h[1-6]|tr|dt|dd|blockquote|pre|div|table|ul|ol|dl|summary|details)>|<hr\s*/?>",
    re.IGNORECASE,
)
# Line breaks and table cells separate words, not sentences.
_WORD_GAP = re.compile(r"<br\s*/?>|</t[dh]>", re.IGNORECASE)
_BREAK = "\ue000"  # a private-use character: never in an article, kept by the sanitiser
_BREAKS = re.compile(rf"\s*(?:{_BREAK}\s*)+")
_SENTENCE_END = ".!?:;…"


_plain_converter = threading.local()


def plain_text(text: str) -> str:
    """Markdown -> the words a reader sees, for the index and snippets."""
    converter = getattr(_plain_converter, "md", None)
    if converter is None:  # building a Markdown instance costs more than converting
        converter = _plain_converter.md = markdown.Markdown(extensions=["tables", "fenced_code"])
    raw = converter.reset().convert((text or "").replace(_BREAK, " "))
    marked = _WORD_GAP.sub(" ", _BLOCK_END.sub(_BREAK, raw))
    stripped = html.unescape(nh3.clean(marked, tags=set()))
    return _WHITESPACE.sub(" ", _BREAKS.sub(_end_block, stripped)).strip(" " + _BREAK)


def _end_block(match: re.Match) -> str:
    """A block boundary reads as the end of a sentence: a heading or list item without its
    own full stop gets one, so "Didn't get the email" + "Check spam" is two sentences."""
    start = match.start()  # the match took the spaces before it: this is the last character
    if start == 0 or match.string[start - 1] in _SENTENCE_END:
        return " "
    return ". "
