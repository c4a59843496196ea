"""Contexta's ML core: a plain Python package (no Django) that apps call through `ml.api`.

Heavy libraries (torch, transformers, onnxruntime, faiss) are imported inside the modules that need them,
so importing `ml.api` in the web process stays cheap.
"""
