"""Export a Hugging Face encoder to ONNX with dynamic int8 weights, once per model version, into the model store.

The cache directory `MODEL_STORE/onnx/<key>/` is keyed by the model directory, its weight files (size and mtime),
the variant, the quantization settings and the onnxruntime version, so a new model version or new settings is a
new export and an old one is simply left behind. A directory is complete when its `meta.json` (written last,
after an atomic rename of the whole directory) names a model file whose sha256 matches; anything else is treated
as a broken cache and exported again. A file lock keeps two worker processes from exporting the same key at once.

Quantization, measured with benchmarks/bench_embeddings.py (MiniLM-L6 against torch fp32, 2,000 real sentences
unless noted). Per-channel int8 weights matter most: per-tensor weights fell to cosine 0.91 (800 sentences), and
`reduce_range` only made things worse. With int8 on every MatMul and the fused attention, the worst sentence
kept cosine about 0.98 (800 sentences); keeping the six feed-forward output projections (intermediate -> hidden,
whose inputs carry GELU outliers that per-tensor dynamic activation scales clip) in fp32 raised it to 0.9898
(mean 0.9965), still under the 0.99 gate. Leaving the fused attention (Q, K, V projections and scores) in fp32
as well gave min 0.9913, mean 0.9976, top-10 overlap 0.942 at the same speed (onnxruntime's int8 attention
kernel is no faster here than its fp32 one), so that is the default: the attention-output and feed-forward-input
MatMuls run in int8. Before quantizing, the graph is fused with onnxruntime's transformer optimizer (attention,
embedding layer norm, bias-GELU, skip layer norm), which is where much of the speed comes from.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from ml.artifacts import ArtifactMeta, read_meta, sha256_file, write_meta
from ml.errors import ArtifactError

EXPORT_VERSION = 1  # bump when the export code changes what it writes: every key changes with it
ONNX_SUBDIR = "onnx"
MODEL_FILE = "model.int8.onnx"
Variant = Literal["encoder", "sequence-classifier"]
_KINDS: dict[str, str] = {"encoder": "onnx-encoder", "sequence-classifier": "onnx-sequence-classifier"}
_OUTPUTS: dict[str, str] = {"encoder": "last_hidden_state", "sequence-classifier": "logits"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
_FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "mpnet": "bert"}


@dataclass(frozen=True)
class QuantSettings:
    """How the fp32 graph becomes int8 (recorded in meta.json and part of the cache key)."""

    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul",)  # the fused Attention op stays fp32 (see the module notes)
    keep_ffn_output_fp32: bool = True
    fuse: bool = True
    opset: int = 17
    # Sequence classifiers on BERT: the last layer computes the [CLS] position only (_cls_only_graph).
    cls_only_last_layer: bool = False


INT8 = QuantSettings()


@dataclass(frozen=True)
class OnnxModel:
    """A complete export: the directory, the int8 model file, its meta, and whether this call wrote it."""

    directory: Path
    model_file: Path
    meta: ArtifactMeta
    created: bool


@lru_cache(maxsize=1)
def _ort_version() -> str:
    try:
        return importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _fingerprint(model_dir: Path) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of the files that define the weights; cheap enough to compute on every call."""
    if not model_dir.is_dir():
        raise ArtifactError(f"model directory {model_dir} does not exist (ONNX export needs a local model)")
    rows = []
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and (path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json"):
            st = path.stat()
            rows.append((path.name, st.st_size, st.st_mtime_ns))
    if not any(name.endswith(_WEIGHT_SUFFIXES) for name, _, _ in rows):
        raise ArtifactError(f"{model_dir} holds no weight files (*.safetensors or *.bin)")
    return rows


def cache_key(model_dir: Path, variant: Variant, settings: QuantSettings = INT8) -> str:
    """The cache key of an export: model directory, weight files, variant, settings, versions."""
    raw = json.dumps(
        {
            "model": str(model_dir.resolve()),
            "files": _fingerprint(model_dir),
            "variant": variant,
            "settings": asdict(settings),
            "export_version": EXPORT_VERSION,
            "onnxruntime": _ort_version(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:20]


def cache_dir(store: Path, model_dir: Path, variant: Variant, settings: QuantSettings = INT8) -> Path:
    """Where the export of `model_dir` lives in the model store (it may not exist yet)."""
    return store / ONNX_SUBDIR / cache_key(model_dir, variant, settings)


def _complete(directory: Path, variant: Variant) -> OnnxModel | None:
    """The export in `directory` if it is whole and its model file matches the recorded sha256, else None."""
    try:
        meta = read_meta(directory)
    except ArtifactError:
        return None
    model_file = directory / MODEL_FILE
    recorded = meta.hyperparameters.get("model_sha256")
    if meta.kind != _KINDS[variant] or not model_file.is_file() or recorded != sha256_file(model_file):
        return None
    return OnnxModel(directory, model_file, meta, created=False)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock across processes (fcntl), released when the block ends."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_onnx(
    model_dir: Path, *, variant: Variant, store: Path, settings: QuantSettings = INT8
) -> OnnxModel:
    """The int8 ONNX export of `model_dir`, exported on first use and reused afterwards.

    A broken cache directory (no meta.json, a missing or altered model file) is removed and exported again;
    a directory that cannot be removed or a model that cannot be exported raises ArtifactError naming the path.
    """
    model_dir = Path(model_dir)
    final = cache_dir(store, model_dir, variant, settings)
    found = _complete(final, variant)
    if found is not None:
        return found
    with _locked(final.with_name(final.name + ".lock")):
        found = _complete(final, variant)  # another process may have finished while we waited
        if found is not None:
            return found
        if final.exists():
            try:
                shutil.rmtree(final)
            except OSError as exc:
                raise ArtifactError(f"broken ONNX cache {final} cannot be removed: {exc}") from None
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            meta = _export(model_dir, tmp, variant, settings)
            write_meta(tmp, meta)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    found = _complete(final, variant)
    if found is None:
        raise ArtifactError(f"ONNX export of {model_dir} into {final} did not produce a complete artifact")
    return OnnxModel(found.directory, found.model_file, found.meta, created=True)


def _export(model_dir: Path, out: Path, variant: Variant, settings: QuantSettings) -> ArtifactMeta:
    fp32 = out / "model.fp32.onnx"
    try:
        config, cls_only = _torch_export(model_dir, fp32, variant, settings)
        graph = _fuse(fp32, out / "model.fused.onnx", config) if settings.fuse else fp32
        excluded = _quantize(graph, out / MODEL_FILE, config, settings)
    except ArtifactError:
        raise
    except Exception as exc:  # the exporters raise many types; the caller needs one, naming the model
        raise ArtifactError(f"ONNX export of {model_dir} failed: {type(exc).__name__}: {exc}") from exc
    for scratch in (fp32, out / "model.fused.onnx"):
        scratch.unlink(missing_ok=True)
    return ArtifactMeta(
        task="onnx",
        kind=_KINDS[variant],
        base_model=str(model_dir.resolve()),
        hyperparameters={
            "quantization": {**asdict(settings), "excluded_nodes": len(excluded), "fused": graph != fp32},
            "cls_only_last_layer": cls_only,
            "export_version": EXPORT_VERSION,
            "onnxruntime": _ort_version(),
            "output": _OUTPUTS[variant],
            "model_sha256": sha256_file(out / MODEL_FILE),
        },
    )


def _torch_export(
    model_dir: Path, target: Path, variant: Variant, settings: QuantSettings
) -> tuple[Any, bool]:
    """Export fp32 with dynamic batch and sequence axes; returns the HF config and whether the last layer was
    cut down to the [CLS] position."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    loader = AutoModel if variant == "encoder" else AutoModelForSequenceClassification
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
        # eager attention exports as plain MatMul/Softmax, which the fusion pass recognises as one Attention op
        model = loader.from_pretrained(model_dir, local_files_only=True, attn_implementation="eager").eval()
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load {model_dir} for ONNX export: {exc}") from None
    sample = tokenizer(
        ["hello world", "a second, longer sentence to export"], padding=True, return_tensors="pt"
    )
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    output = _OUTPUTS[variant]
    cls_only = variant == "sequence-classifier" and settings.cls_only_last_layer and _fits_cls_only(model)

    class _Graph(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: Any) -> Any:
            return getattr(self.inner(**dict(zip(names, tensors, strict=True))), output)

    graph = _cls_only_graph(model, names) if cls_only else _Graph(model)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[output] = {0: "batch", 1: "sequence"} if variant == "encoder" else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings about Python booleans in the attention mask code
        # dynamo=False: the TorchScript exporter gives the plain BERT graph that onnxruntime's fusion expects
        torch.onnx.export(
            graph,
            tuple(sample[n] for n in names),
            str(target),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=settings.opset,
            dynamo=False,
        )
    return model.config, cls_only


def _cls_only_graph(model: Any, names: list[str]) -> Any:
    import torch

    class BertClsOnly(torch.nn.Module):
        """A BERT sequence classifier whose last layer computes only the position the classifier reads.

        The classifier sees pooler(hidden[:, 0]), so in the last layer only the [CLS] query matters: keys and
        values still come from every token, but the query, attention output and feed-forward run on one row
        instead of all of them, a sixth less work for MiniLM-L6. Same logits as the full model (tested); the
        first layers are BertModel's own code, so the fusion pass still finds their attention.
        """

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.body = copy.deepcopy(inner.bert)
            self.last = self.body.encoder.layer[-1]
            del self.body.encoder.layer[-1]
            self.pooler, self.body.pooler = self.body.pooler, None
            self.classifier = inner.classifier

        def forward(self, *tensors: Any) -> Any:
            inputs = dict(zip(names, tensors, strict=True))
            hidden = self.body(**inputs).last_hidden_state
            attention = self.last.attention.self
            heads, size = attention.num_attention_heads, attention.attention_head_size
            cls = hidden[:, :1]
            query = attention.query(cls).view(-1, 1, heads, size).transpose(1, 2)
            key = attention.key(hidden).view(hidden.size(0), -1, heads, size).transpose(1, 2)
            value = attention.value(hidden).view(hidden.size(0), -1, heads, size).transpose(1, 2)
            mask = inputs["attention_mask"][:, None, None, :].to(hidden.dtype)
            scores = query @ key.transpose(2, 3) * size**-0.5 + (1.0 - mask) * torch.finfo(hidden.dtype).min
            context = (torch.softmax(scores, dim=-1) @ value).transpose(1, 2).reshape(-1, 1, heads * size)
            attended = self.last.attention.output(context, cls)
            out = self.last.output(self.last.intermediate(attended), attended)
            return self.classifier(self.pooler(out))

    return BertClsOnly(model)


def _fits_cls_only(model: Any) -> bool:
    """Whether `model` is a BERT classifier reading the pooled [CLS] position (what _cls_only_graph cuts)."""
    bert = getattr(model, "bert", None)
    return (
        type(model).__name__ == "BertForSequenceClassification"
        and bert is not None
        and getattr(bert, "pooler", None) is not None
        and not model.config.is_decoder
        and len(bert.encoder.layer) >= 2
    )


def _fuse(source: Path, target: Path, config: Any) -> Path:
    """Fuse attention, layer norms and GELU for BERT-like graphs; other architectures keep the plain graph."""
    model_type = _FUSABLE.get(str(getattr(config, "model_type", "")))
    if model_type is None:
        return source
    from onnxruntime.transformers import optimizer

    with _quiet():
        fused = optimizer.optimize_model(
            str(source),
            model_type=model_type,
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=0,  # graph fusions only: the saved graph stays portable across CPUs
        )
        fused.save_model_to_file(str(target))
    return target


def _quantize(source: Path, target: Path, config: Any, settings: QuantSettings) -> list[str]:
    """Dynamic int8 quantization; returns the names of MatMul nodes kept in fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source))
    excluded: list[str] = []
    if settings.keep_ffn_output_fp32:
        excluded = _ffn_output_nodes(graph, int(getattr(config, "intermediate_size", 0)))
    with _quiet():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=QuantType[settings.weight_type],
            nodes_to_exclude=excluded,
            extra_options={
                "DefaultTensorType": onnx.TensorProto.FLOAT,  # fused ops lack inferred types
                "MatMulConstBOnly": True,  # activation x activation products (unfused attention) stay fp32
            },
        )
    return excluded


def _ffn_output_nodes(graph: Any, intermediate_size: int) -> list[str]:
    """MatMul nodes whose constant weight maps the feed-forward width back to the hidden size."""
    if intermediate_size <= 0:
        return []
    shapes = {init.name: tuple(init.dims) for init in graph.graph.initializer}
    return [
        node.name
        for node in graph.graph.node
        if node.op_type == "MatMul"
        and any(len(s) == 2 and s[0] == intermediate_size for s in (shapes.get(i, ()) for i in node.input))
    ]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The optimizer and quantizer log advice to the root logger on every call; keep worker logs readable."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def load_session(model: OnnxModel, threads: int = 0) -> Any:
    """An onnxruntime CPU InferenceSession for an export; `threads` 0 keeps onnxruntime's default."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(model.model_file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise ArtifactError(f"cannot load ONNX model {model.model_file}: {exc}") from None


def token_batches(
    tokenizer: Any, texts: list[str], max_length: int, batch_size: int, input_names: list[str]
) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """Tokenize once, sort by token count, and yield (indices, padded int64 inputs) per batch.

    Sorting by tokens rather than characters keeps padding low: on the benchmark corpus, character-sorted
    batches of 64 were still about 40 % padding. `attention_mask` is always yielded (pooling needs it).
    """
    import numpy as np

    if not texts:
        return
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    ids, types = encoded["input_ids"], encoded.get("token_type_ids")
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(ids[i]) for i in batch)
        arrays = {
            "input_ids": np.full((len(batch), width), pad, dtype=np.int64),
            "attention_mask": np.zeros((len(batch), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(batch), width), dtype=np.int64),
        }
        for row, i in enumerate(batch):
            n = len(ids[i])
            arrays["input_ids"][row, :n] = ids[i]
            arrays["attention_mask"][row, :n] = 1
            if types is not None:
                arrays["token_type_ids"][row, :n] = types[i]
        yield batch, {k: arrays[k] for k in {*input_names, "attention_mask"}}


__all__ = [
    "INT8",
    "MODEL_FILE",
    "OnnxModel",
    "QuantSettings",
    "cache_dir",
    "cache_key",
    "ensure_onnx",
    "load_session",
    "token_batches",
]
