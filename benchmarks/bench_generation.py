"""Generation speed: tokens/s and time to first token of SmolLM2-135M-Instruct on our generators.

Prompts are real support questions (BANKING77 training texts; nothing is tuned on them). The baseline, in the
same run and on the same weights, is a plain fp32 `model.generate()` call. Variants: our "local" backend per
dtype / quantization, and on CPU the "llama-cpp" backend on the packaged Q4_1 GGUF (the CPU default). Each
variant's greedy answers are compared with the baseline's, and llama.cpp's next tokens are checked against
fp32 teacher-forced along the baseline's answers (`next_token_agreement`), since one near-tie early in an
answer makes two faithful models write different texts.

    .venv/bin/python -m benchmarks.bench_generation [--full] [--device cuda] [--variants bf16,8bit,4bit]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

TARGET_TOKENS_PER_S = 20.0
TARGET_TTFT_S = 0.5
NEW_TOKENS = 64
# label -> (dtype, quant)
VARIANTS = {
    "fp32": ("float32", None),
    "bf16": ("bfloat16", None),
    "8bit": ("bfloat16", "8bit"),
    "4bit": ("bfloat16", "4bit"),
    "llama-cpp": ("gguf", None),  # the packaged GGUF's own Q4_1 weights, run by llama.cpp
}
AGREEMENT_TARGET = 0.95


def _data_dir() -> Path:
    env = os.environ.get("DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def support_prompts(data_dir: Path, n: int) -> list[str]:
    """`n` support questions of varied length from the BANKING77 training file, spread over the file."""
    with (data_dir / "banking77" / "train.csv").open(encoding="utf-8", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh) if len(row["text"]) > 30]
    step = max(1, len(texts) // n)
    return [texts[i * step] for i in range(n)]


def _messages(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a helpful bank support assistant. Answer briefly."},
        {"role": "user", "content": text},
    ]


def _baseline(gen: Any, text: str) -> dict[str, Any]:
    """Plain fp32 `model.generate()` greedy on the same prompt ids; TTFT is a 1-token generate call."""
    import torch

    from ml.api import GenerationRequest
    from ml.generation import validate_request  # the baseline reuses the backend's own prompt ids

    req = validate_request(GenerationRequest(messages=tuple(_messages(text)), max_new_tokens=NEW_TOKENS))
    ids = torch.tensor([gen.prompt_ids(req)], device=gen.model.device)
    kwargs = {
        "attention_mask": torch.ones_like(ids),
        "do_sample": False,
        "pad_token_id": gen.tokenizer.eos_token_id,
    }
    with torch.inference_mode():
        start = time.perf_counter()
        gen.model.generate(ids, max_new_tokens=1, **kwargs)
        ttft = time.perf_counter() - start
        start = time.perf_counter()
        out = gen.model.generate(ids, max_new_tokens=NEW_TOKENS, **kwargs)
        total = time.perf_counter() - start
    new = [t for t in out[0, ids.shape[1] :].tolist() if t not in gen.eos_ids]
    return {
        "tokens": len(new),
        "tokens_per_s": len(new) / total,
        "ttft_s": ttft,
        "text": gen.tokenizer.decode(new, skip_special_tokens=True),
    }


def _ours(gen: Any, text: str) -> dict[str, Any]:
    from ml.api import GenerationRequest

    result = gen.generate(GenerationRequest(messages=tuple(_messages(text)), max_new_tokens=NEW_TOKENS))
    return {
        "tokens": result.tokens,
        "tokens_per_s": result.tokens / result.total_s,
        "decode_tokens_per_s": result.tokens_per_s,
        "ttft_s": result.time_to_first_token_s,
        "text": result.text,
    }


def _summary(rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any]:
    out = {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rows),
        "ttft_s": statistics.median(r["ttft_s"] for r in rows),
        "tokens": sum(r["tokens"] for r in rows),
        "same_text_as_baseline": sum(r["text"] == b["text"] for r, b in zip(rows, reference, strict=True)),
        "prompts": len(rows),
    }
    if "decode_tokens_per_s" in rows[0]:
        out["decode_tokens_per_s"] = statistics.median(r["decode_tokens_per_s"] for r in rows)
    return out


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def run(
    quick: bool = True,
    *,
    device: str = "cpu",
    variants: tuple[str, ...] | None = None,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure the local generator per variant against a plain fp32 `model.generate()` baseline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from ml.generation import (  # the backends themselves, with settings ml.api does not expose
        GENERATORS,
        gguf,
    )

    prompts = support_prompts(data_dir or _data_dir(), 3 if quick else 8)
    load_start = os.getloadavg()[0]  # other work on the machine slows decoding a lot: record it
    variants = variants or (("fp32", "llama-cpp") if device == "cpu" else ("bf16", "8bit", "4bit"))
    start = time.perf_counter()
    reference_gen = GENERATORS.create("local", device=device, dtype="float32", quant="none")
    _ours(reference_gen, prompts[0])  # warm-up: first calls allocate and pick kernels
    gens: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for label in variants:
        dtype, quant = VARIANTS[label]
        try:
            gens[label] = (
                GENERATORS.create("llama-cpp", device=device)
                if dtype == "gguf"
                else GENERATORS.create("local", device=device, dtype=dtype, quant=quant or "none")
            )
            _ours(gens[label], prompts[0])
        except Exception as exc:  # one failing variant (a missing quantizer) must not hide the others
            gens.pop(label, None)
            results[label] = {"error": f"{type(exc).__name__}: {exc}"}
    # Interleaved, prompt by prompt: a change in the machine's load hits every variant alike.
    baseline_rows: list[dict[str, Any]] = []
    rows: dict[str, list[dict[str, Any]]] = {label: [] for label in gens}
    for text in prompts:
        baseline_rows.append(_baseline(reference_gen, text))
        for label, gen in gens.items():
            rows[label].append(_ours(gen, text))
    baseline = _summary(baseline_rows, baseline_rows)
    for label in gens:
        summary = _summary(rows[label], baseline_rows)
        summary["ratio_to_baseline"] = summary["tokens_per_s"] / baseline["tokens_per_s"]
        summary["meets_targets"] = (
            summary["tokens_per_s"] >= TARGET_TOKENS_PER_S and summary["ttft_s"] <= TARGET_TTFT_S
        )
        results[label] = summary
    if "llama-cpp" in gens:
        agreement = gguf.next_token_agreement(reference_gen, gens["llama-cpp"].settings.path, prompts)
        results["llama-cpp"]["next_token_agreement"] = round(agreement.rate, 4)
        results["llama-cpp"]["agreement_positions"] = agreement.positions
        results["llama-cpp"]["min_first_logit_correlation"] = round(agreement.min_first_logit_correlation, 4)
        results["llama-cpp"]["agreement_target"] = AGREEMENT_TARGET
    return {
        "benchmark": "generation",
        "model": reference_gen.model_id,
        "device": device,
        "new_tokens": NEW_TOKENS,
        "prompts": len(prompts),
        "targets": {"tokens_per_s": TARGET_TOKENS_PER_S, "ttft_s": TARGET_TTFT_S},
        "baseline_model_generate_fp32": baseline,
        "variants": results,
        "seconds": time.perf_counter() - start,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": _torch_threads(),
            "load_avg_1m_start_end": [load_start, os.getloadavg()[0]],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="8 prompts instead of 3")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="", help="comma-separated: fp32,bf16,8bit,4bit,llama-cpp")
    args = parser.parse_args()
    variants = tuple(v for v in args.variants.split(",") if v) or None
    print(json.dumps(run(not args.full, device=args.device, variants=variants), indent=2))


if __name__ == "__main__":
    main()
