"""Answer or decline (pure): a calibrated confidence from retrieval's features, and the decision.

`confidence(candidates)` is the probability that the top document is the right one, from a logistic model over
the features `apps.support.retrieval` computes. `decide` answers when that passes the threshold: a curated
Q/A pair (kind "qa") close enough to the question is returned as it was written; otherwise the best passage(s)
of the top document are quoted, with citations. Below the threshold it declines and offers a person.

Nothing here generates text: an answer is only ever words that are in the knowledge base.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from apps.support.retrieval import QA, Candidate, PassageHit

# Logistic calibration: P(top document is right) = sigmoid(INTERCEPT + sum(w * feature)), features in
# FEATURES order. Fitted by `manage.py support_eval --stackfaq DIR --fit` (Newton's method, L2 1e-2, see
# `fit_logistic`) on the tuning half of the StackFAQ queries only (query ids whose sha256 is even), each asked
# of five knowledge bases that each left out a seeded 20 % of the threads (seeds 1-5; the evaluation's seed,
# 0, is not among them), so the fit sees questions the knowledge base cannot answer. The other half of the
# queries is the evaluation half; docs/support.md has the figures on both halves.
FEATURES = ("cosine", "margin", "fused_margin", "lexical")
INTERCEPT = -9.0268
WEIGHTS = (13.313, 11.684, 0.5256, 0.0073)
# The default answer threshold: the highest confidence at which the tuning half still answered 90 % of the
# questions the knowledge base could answer (same fit run as above).
DEFAULT_THRESHOLD = 0.6
# A curated answer is returned as written when the question is at least this close to it (cosine of the
# MiniLM embeddings): not fitted (StackFAQ has no curated pairs); on StackFAQ 0.8 to a thread's question
# was a near-paraphrase (docs/support.md).
QA_MIN_SIMILARITY = 0.8
# A second passage of the same document is quoted when its fused score is this close to the best one.
SECOND_QUOTE_RATIO = 0.9

# Wording shown to the person asking; kept here, apart from the logic, so it can be read and reviewed alone.
DECLINE_TEXT = (
    "I don't know the answer to that from our help articles. "
    "Would you like me to pass your question to a person on our team?"
)
SOURCE_LINE = "Source: {title}"

Mode = Literal["qa", "extractive", "decline"]


@dataclass(frozen=True)
class Citation:
    """A document an answer used, and the passages quoted from it (index ids)."""

    document: int
    title: str
    passages: tuple[str, ...]
    headings: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """What to say: an answer (mode "qa" or "extractive") with its citations, or the decline."""

    mode: Mode
    confidence: float
    text: str
    citations: tuple[Citation, ...]

    @property
    def answered(self) -> bool:
        return self.mode != "decline"

    @property
    def document(self) -> int | None:
        return self.citations[0].document if self.citations else None


def features(candidate: Candidate) -> tuple[float, ...]:
    return (candidate.cosine, candidate.margin, candidate.fused_margin, candidate.lexical)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def calibrated(
    values: Sequence[float], *, intercept: float = INTERCEPT, weights: Sequence[float] = WEIGHTS
) -> float:
    return _sigmoid(intercept + sum(w * v for w, v in zip(weights, values, strict=True)))


def confidence(candidates: Sequence[Candidate]) -> float:
    """P(the first candidate is the right document); 0 when there is none."""
    return calibrated(features(candidates[0])) if candidates else 0.0


def fit_logistic(
    rows: Sequence[Sequence[float]], labels: Sequence[bool], *, l2: float = 1e-2, steps: int = 50
) -> tuple[float, tuple[float, ...]]:
    """(intercept, weights) of an L2-regularised logistic regression, by Newton's method (the intercept is
    not penalised). Small and exact for a handful of features; numpy is imported here only."""
    import numpy as np

    x = np.c_[np.ones(len(rows)), np.asarray(rows, dtype=np.float64)]
    y = np.asarray(labels, dtype=np.float64)
    penalty = np.eye(x.shape[1]) * l2
    penalty[0, 0] = 0.0
    beta = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (p - y) + penalty @ beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    return float(beta[0]), tuple(float(b) for b in beta[1:])


def threshold_for_rate(confidences: Sequence[float], rate: float) -> float:
    """The highest threshold (rounded down to 0.05) at which at least `rate` of `confidences` pass."""
    if not confidences:
        return 0.0
    ordered = sorted(confidences, reverse=True)
    needed = ordered[max(0, math.ceil(rate * len(ordered)) - 1)]
    return math.floor(needed * 20) / 20


def _quoted(passages: Sequence[PassageHit], texts: Mapping[str, str]) -> list[PassageHit]:
    """The best passage with text to quote, and the next one when it scores nearly as well."""
    usable = [p for p in passages if texts.get(p.id, "").strip()]
    if not usable:
        return list(passages[:1])
    chosen = usable[:1]
    if len(usable) > 1 and usable[1].fused >= SECOND_QUOTE_RATIO * usable[0].fused:
        chosen.append(usable[1])
    return chosen


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line.strip() else ">" for line in text.strip().splitlines())


def extractive_text(title: str, quoted: Sequence[PassageHit], texts: Mapping[str, str]) -> str:
    """The quoted passages (Markdown block quotes, headings first) and the source line."""
    parts = []
    for p in quoted:
        body = texts.get(p.id, "").strip() or p.heading or title
        parts.append((f"**{p.heading}**\n" if p.heading and body != p.heading else "") + _quote(body))
    return "\n\n".join([*parts, SOURCE_LINE.format(title=title)])


def _citation(candidate: Candidate, passages: Sequence[PassageHit]) -> Citation:
    return Citation(
        document=candidate.document,
        title=candidate.title,
        passages=tuple(p.id for p in passages),
        headings=tuple(p.heading for p in passages),
    )


def decide(
    candidates: Sequence[Candidate],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    texts: Mapping[str, str] | None = None,
) -> Decision:
    """Answer from the top candidate, or decline.

    texts: the stored text of each candidate passage by index id (the index keeps no text): a curated pair's
    answer, a chunk's text. A curated pair (kind "qa") at QA_MIN_SIMILARITY or closer is returned as is, with
    the confidence it has; otherwise the answer is extractive when the confidence reaches `threshold`.
    """
    texts = texts or {}
    conf = confidence(candidates)
    if not candidates:
        return Decision("decline", conf, DECLINE_TEXT, ())
    top = candidates[0]
    best = top.best
    qa_text = texts.get(best.id, "").strip()
    if best.kind == QA and (best.cosine or 0.0) >= QA_MIN_SIMILARITY and qa_text:
        return Decision("qa", conf, qa_text, (_citation(top, [best]),))
    if conf < threshold:
        return Decision("decline", conf, DECLINE_TEXT, ())
    quoted = _quoted(top.passages, texts)
    return Decision("extractive", conf, extractive_text(top.title, quoted, texts), (_citation(top, quoted),))
