"""Language of an item: a cheap guess from its script, or from the stopwords it uses."""

from __future__ import annotations

import re

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "of",
            "to",
            "in",
            "is",
            "for",
            "on",
            "that",
            "with",
            "as",
            "by",
            "at",
            "from",
            "are",
            "was",
            "be",
            "it",
            "its",
            "has",
            "have",
            "will",
            "this",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "nicht",
            "mit",
            "von",
            "den",
            "des",
            "auf",
            "für",
            "im",
            "dem",
            "eine",
            "ein",
            "zu",
            "sich",
            "auch",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "et",
            "des",
            "est",
            "une",
            "pour",
            "dans",
            "que",
            "qui",
            "sur",
            "du",
            "au",
            "avec",
            "pas",
            "par",
            "sont",
            "aux",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "y",
            "de",
            "que",
            "en",
            "un",
            "una",
            "por",
            "con",
            "para",
            "del",
            "se",
            "es",
            "al",
            "sus",
            "como",
            "más",
        ]
    ),
    "it": frozenset(
        [
            "il",
            "lo",
            "la",
            "gli",
            "le",
            "e",
            "di",
            "che",
            "un",
            "una",
            "per",
            "con",
            "del",
            "della",
            "non",
            "sono",
            "nel",
            "alla",
        ]
    ),
    "nl": frozenset(
        [
            "de",
            "het",
            "een",
            "en",
            "van",
            "is",
            "dat",
            "op",
            "te",
            "in",
            "met",
            "voor",
            "niet",
            "zijn",
            "er",
            "aan",
            "ook",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "e",
            "de",
            "que",
            "em",
            "um",
            "uma",
            "para",
            "com",
            "do",
            "da",
            "não",
            "por",
            "mais",
            "dos",
            "das",
        ]
    ),
    "sv": frozenset(
        [
            "och",
            "att",
            "det",
            "som",
            "en",
            "på",
            "är",
            "av",
            "för",
            "med",
            "till",
            "den",
            "har",
            "inte",
            "om",
            "ett",
        ]
    ),
    "fi": frozenset(
        ["ja", "on", "ei", "se", "että", "oli", "ovat", "mutta", "kun", "joka", "myös", "tai", "sen", "hän"]
    ),
}
_SCRIPTS = (  # (first code point, last code point, language) for scripts that name a language by themselves
    (0x3040, 0x30FF, "ja"),
    (0xAC00, 0xD7AF, "ko"),
    (0x4E00, 0x9FFF, "zh"),
    (0x0400, 0x04FF, "ru"),
    (0x0600, 0x06FF, "ar"),
    (0x0590, 0x05FF, "he"),
    (0x0370, 0x03FF, "el"),
    (0x0E00, 0x0E7F, "th"),
    (0x0900, 0x097F, "hi"),
)
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """A cheap guess: the script for non-Latin text, else the language whose stopwords occur most.

    Returns an ISO 639-1 code, or "" when the text is too short or has no clear winner (fewer than two
    stopword hits). Kana is checked before CJK ideographs, so Japanese with kanji is still "ja".
    """
    letters = [ch for ch in text[:2000] if ch.isalpha()]
    if not letters:
        return ""
    counts: dict[str, int] = {}
    for ch in letters:
        cp = ord(ch)
        for low, high, lang in _SCRIPTS:
            if low <= cp <= high:
                counts[lang] = counts.get(lang, 0) + 1
                break
    if counts:
        lang, n = max(counts.items(), key=lambda kv: kv[1])
        if n >= 0.3 * len(letters):
            return "ja" if counts.get("ja", 0) >= 0.1 * len(letters) else lang
    words = [w.lower() for w in _WORD_RE.findall(text[:2000])]
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(hits, key=lambda lang: hits[lang])
    ranked = sorted(hits.values(), reverse=True)
    if ranked[0] < 2 or ranked[0] == ranked[1]:
        return "en" if ranked[0] == 0 and _mostly_ascii(letters) and len(words) <= 6 else ""
    return best


def _mostly_ascii(letters: list[str]) -> bool:
    # Short headlines ("$TSLA up 5%") carry no stopwords; finance feeds are overwhelmingly English.
    return sum(ch.isascii() for ch in letters) >= 0.95 * len(letters)
