"""Attention Explorer's model layer: torch/transformers and numpy only, never streamlit.

    from models import load_model, run_attention
    loaded = load_model("minilm")
    run = run_attention(loaded, "The cat sat on the mat.")
    run.tokens, run.attentions.shape   # [layers, heads, n, n]
"""
from models.core.loading import DEFAULT_MODEL, PRESETS, LoadedModel, ModelLoadError, load_model
from models.core.run import AttentionRun, AttentionStack, RunError, attention_stacks, run_attention

__all__ = [
    "DEFAULT_MODEL",
    "PRESETS",
    "AttentionRun",
    "AttentionStack",
    "LoadedModel",
    "ModelLoadError",
    "RunError",
    "attention_stacks",
    "load_model",
    "run_attention",
]
