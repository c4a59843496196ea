"""Text out of the files a knowledge base is built from (pure: no ORM, no Django).

`extract(data, fmt)` reads Markdown, HTML, plain text, PDF (pypdf) and CSV files of question,answer pairs.
It returns the text as found (HTML still as markup); `sanitising` makes it safe and `html_to_text` turns
sanitised HTML into Markdown-like text whose headings the chunker follows. Every problem a person can fix
(an empty file, a corrupt or password-protected PDF, a CSV without question and answer columns) raises
ExtractionError with a sentence saying what is wrong.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import PurePosixPath

MARKDOWN, HTML, TEXT, PDF, CSV_QA = "markdown", "html", "text", "pdf", "csv_qa"
FORMATS = (MARKDOWN, HTML, TEXT, PDF, CSV_QA)
EXTENSIONS = {
    ".md": MARKDOWN, ".markdown": MARKDOWN, ".html": HTML, ".htm": HTML, ".txt": TEXT, ".text": TEXT,
    ".pdf": PDF, ".csv": CSV_QA,
}  # fmt: skip
CONTENT_TYPES = {
    "text/markdown": MARKDOWN, "text/x-markdown": MARKDOWN, "text/html": HTML,
    "application/xhtml+xml": HTML, "text/plain": TEXT, "application/pdf": PDF, "text/csv": CSV_QA,
}  # fmt: skip
QA_COLUMNS = ("question", "answer")
MAX_QA_PAIRS = 5000
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


class ExtractionError(ValueError):
    """A file that cannot be read as the format it claims; the message says why, for a person."""


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


@dataclass(frozen=True)
class Extracted:
    text: str  # HTML formats: the markup, to be sanitised; the others: text
    title: str = ""  # what the file calls itself (an HTML <title>, the first Markdown heading, PDF metadata)
    pairs: tuple[QAPair, ...] = field(default_factory=tuple)  # csv_qa only


def guess_format(filename: str = "", content_type: str = "") -> str | None:
    """The format a file name's extension names, else the one its Content-Type names, or None.

    The extension comes first: browsers label uploads loosely (a .csv as text/plain or a spreadsheet)."""
    by_name = EXTENSIONS.get(PurePosixPath(filename.lower()).suffix)
    return by_name or CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())


def extract(data: bytes, fmt: str) -> Extracted:
    """The text of `data` read as `fmt` (one of FORMATS); ExtractionError for anything unreadable."""
    if fmt not in _READERS:
        raise ExtractionError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if not data or not data.strip():
        raise ExtractionError("the file is empty")
    extracted = _READERS[fmt](data)
    if not extracted.text.strip() and not extracted.pairs:
        raise ExtractionError("the file holds no text")
    return extracted


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without a byte-order mark), else Windows-1252, which decodes nearly anything."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _markdown(data: bytes) -> Extracted:
    text = decode_text(data)
    heading = _MD_HEADING.search(text)
    return Extracted(text=text, title=heading.group(1) if heading else "")


def _text(data: bytes) -> Extracted:
    return Extracted(text=decode_text(data))


def _html(data: bytes) -> Extracted:
    markup = decode_text(data)
    title = _TITLE.search(markup)
    return Extracted(text=markup, title=title.group(1).strip() if title else "")


def _pdf(data: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("the PDF is password-protected: upload a copy without a password")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.get("/Title") or "") if reader.metadata else ""
    except ExtractionError:
        raise
    except (PyPdfError, ValueError, TypeError, KeyError, OSError) as exc:
        raise ExtractionError(f"the file is not a readable PDF ({exc})") from None
    if not any(page.strip() for page in pages):
        raise ExtractionError("the PDF has no text to read (a scan without a text layer?)")
    return Extracted(text="\n\n".join(pages), title=title)


def _csv_qa(data: bytes) -> Extracted:
    try:
        rows = list(csv.reader(io.StringIO(decode_text(data))))
    except csv.Error as exc:
        raise ExtractionError(f"the CSV cannot be read: {exc}") from None
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if not all(column in header for column in QA_COLUMNS):
        found = ", ".join(h for h in header if h) or "none"
        raise ExtractionError(
            f"a Q&A CSV needs a header with the columns question and answer; found: {found}"
        )
    q, a = header.index("question"), header.index("answer")
    pairs = [_pair(row, q, a) for row in rows[1:]]
    kept = tuple(p for p in pairs if p is not None)
    if not kept:
        raise ExtractionError("the CSV has no row with both a question and an answer")
    if len(kept) > MAX_QA_PAIRS:
        raise ExtractionError(f"the CSV has {len(kept)} question/answer rows; at most {MAX_QA_PAIRS}")
    text = "\n\n".join(f"Q: {p.question}\nA: {p.answer}" for p in kept)
    return Extracted(text=text, pairs=kept)


def _pair(row: list[str], q: int, a: int) -> QAPair | None:
    question = row[q].strip() if len(row) > q else ""
    answer = row[a].strip() if len(row) > a else ""
    return QAPair(question, answer) if question and answer else None


_READERS = {MARKDOWN: _markdown, TEXT: _text, HTML: _html, PDF: _pdf, CSV_QA: _csv_qa}


# --- sanitised HTML to text ------------------------------------------------------------------------------
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote", "pre",
     "table", "tr", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "hr", "details", "summary"}
)  # fmt: skip
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _TextWriter(HTMLParser):
    """Text of (sanitised) HTML: blocks on their own lines, headings as Markdown `#` lines, list items `- `."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag in ("br", "td", "th"):
            self.parts.append("\n" if tag == "br" else " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HEADINGS or tag in _BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(markup: str) -> str:
    """Markdown-like text of sanitised HTML, so that the chunker sees its headings."""
    writer = _TextWriter()
    writer.feed(markup)
    writer.close()
    lines = [line.strip() for line in "".join(writer.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
