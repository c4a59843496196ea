"""Sanitising what people upload, so no script in a document ever reaches a browser (pure: no ORM, no Django).

HTML goes through nh3 (Rust's ammonia, an allow-list sanitiser that parses as browsers do): scripts, styles,
event-handler attributes and links that are not http(s) or mailto are dropped. Everything the support app
stores as text (a document's extracted text, titles, headings, curated answers) is then made plain text: no
tag survives, however it was escaped, and Markdown links or images that point at `javascript:`, `data:` or
`vbscript:` URLs keep their words but lose the link. What is stored is text a template escapes and a chat
widget may render as Markdown without running anything.
"""

from __future__ import annotations

import html
import re

import nh3

URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Tags whose content is never text a reader should see.
DROP_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math", "title", "head"}
)
_BAD_SCHEME = r"(?:javascript|vbscript|data|file)\s*:"
# [words](javascript:...) and ![alt](data:...): the words stay, the link goes.
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?\s*" + _BAD_SCHEME + r"(?:[^()]|\([^()]*\))*\)", re.IGNORECASE)
# A bare dangerous URL left anywhere in the text (a reference-style link definition, say).
_BARE_URL = re.compile(r"(?<![\w-])" + _BAD_SCHEME, re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_PASSES = 5


def sanitise_html(markup: str) -> str:
    """`markup` with only safe tags and attributes left (nh3's allow-list, http(s)/mailto links)."""
    return nh3.clean(
        markup,
        clean_content_tags=set(DROP_CONTENT),
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
    )


def strip_tags(text: str) -> str:
    """`text` with every tag removed and entities decoded, repeated until nothing changes.

    One pass could leave a tag that was escaped (`&lt;script&gt;` decodes to `<script>`); the loop removes
    that too, so the result holds no markup a browser would parse as a tag.
    """
    for _ in range(MAX_PASSES):
        cleaned = html.unescape(nh3.clean(text, tags=set(), clean_content_tags=set(DROP_CONTENT)))
        if cleaned == text:
            return cleaned
        text = cleaned
    return text.replace("<", "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}")  # never reached in practice


def neutralise_links(text: str) -> str:
    """Markdown links and images to script-capable URLs become their words alone."""
    text = _MD_LINK.sub(lambda m: m.group(1), text)
    return _BARE_URL.sub("", text)


def plain_text(text: str) -> str:
    """A title, heading or answer as safe plain text on one line."""
    return " ".join(neutralise_links(strip_tags(_CONTROL.sub(" ", text))).split())


def sanitise_text(text: str) -> str:
    """Extracted document text, safe: no tags, no script links, no control characters; line breaks kept."""
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [line.rstrip() for line in neutralise_links(strip_tags(text)).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
