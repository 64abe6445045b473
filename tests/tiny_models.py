"""Tiny random-init models of each architecture, saved as plain Hugging Face folders.

They stand in for hub models (bert, roberta, distilbert, gpt2, t5, bart, and a Llama with
grouped-query attention for SmolLM2) in tests: same code paths, a few hundred kilobytes each, no
network. write_llama_gguf writes the Llama as a GGUF file. Checkpoint series of them stand in for a
Trainer's output folder.
"""
import json
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from models.checkpoints.demo_corpus import sentences
from models.checkpoints.trainer import word_tokenizer
from models.core.loading import bundled_model_path

SMALL = dict(hidden=32, layers=2, heads=4, ffn=37)
SERIES_STEPS = (10, 100, 1000)  # the training steps of a tiny checkpoint series
CORPUS = ["The animal didn't cross the street because it was too tired.",
          "The capital of Italy is Rome. Paris is in France.", "Hello world, hello tokens!"] * 20


def _byte_level_tokenizer(special: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS, trainer)
    return tokenizer


def gpt2_tokenizer() -> tf.PreTrainedTokenizerFast:
    return tf.GPT2TokenizerFast(tokenizer_object=_byte_level_tokenizer(["<|endoftext|>"]))


def roberta_tokenizer() -> tf.PreTrainedTokenizerFast:
    tokenizer = _byte_level_tokenizer(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tf.RobertaTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>")


def gemma_style_tokenizer() -> tf.PreTrainedTokenizerFast:
    """SentencePiece as Gemma's tokenizer.json has it: a Unigram model whose normalizer prepends "▁"
    and turns spaces into "▁", no pre-tokenizer (so every piece of a sentence is word 0), <bos> first."""
    pieces = ["▁I", "▁love", "▁my", "▁cat", "▁the", "▁", "s", "c", "a", "t", "I", "l", "o", "v", "e", "m", "y", "h"]
    vocab = [(t, 0.0) for t in ("<pad>", "<eos>", "<bos>", "<unk>")] + [(p, -1.0) for p in pieces]  # fewest pieces win
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=3))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A $B",
                                                             special_tokens=[("<bos>", 2)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    return tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>",
                                      pad_token="<pad>", unk_token="<unk>")


def bert_tokenizer() -> tf.PreTrainedTokenizerFast:
    return tf.AutoTokenizer.from_pretrained(bundled_model_path())


def tiny_config(kind: str) -> tf.PretrainedConfig:
    h, n_layers, n_heads, ffn = SMALL["hidden"], SMALL["layers"], SMALL["heads"], SMALL["ffn"]
    bert_vocab, bpe_vocab = 30522, 400
    return {
        "bert": lambda: tf.BertConfig(vocab_size=bert_vocab, hidden_size=h, num_hidden_layers=n_layers,
                                      num_attention_heads=n_heads, intermediate_size=ffn,
                                      architectures=["BertForMaskedLM"]),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=bert_vocab, dim=h, n_layers=n_layers, n_heads=n_heads,
                                                  hidden_dim=ffn, architectures=["DistilBertModel"]),
        "roberta": lambda: tf.RobertaConfig(vocab_size=bpe_vocab, hidden_size=h, num_hidden_layers=n_layers,
                                            num_attention_heads=n_heads, intermediate_size=ffn, pad_token_id=1,
                                            bos_token_id=0, eos_token_id=2, architectures=["RobertaModel"]),
        "gpt2": lambda: tf.GPT2Config(vocab_size=bpe_vocab, n_embd=h, n_layer=n_layers, n_head=n_heads,
                                      bos_token_id=0, eos_token_id=0, architectures=["GPT2LMHeadModel"]),
        "t5": lambda: tf.T5Config(vocab_size=bert_vocab, d_model=h, d_kv=h // n_heads, d_ff=ffn, num_layers=n_layers,
                                  num_heads=n_heads, decoder_start_token_id=0, pad_token_id=0,
                                  architectures=["T5ForConditionalGeneration"]),
        # grouped-query attention as in SmolLM2: query heads 0-1 read key/value head 0, heads 2-3 head 1
        "llama": lambda: tf.LlamaConfig(vocab_size=bpe_vocab, hidden_size=h, intermediate_size=ffn,
                                        num_hidden_layers=n_layers, num_attention_heads=n_heads,
                                        num_key_value_heads=n_heads // 2, max_position_embeddings=128,
                                        bos_token_id=0, eos_token_id=0, tie_word_embeddings=True,
                                        architectures=["LlamaForCausalLM"]),
        "bart": lambda: tf.BartConfig(vocab_size=bpe_vocab, d_model=h, encoder_layers=n_layers,
                                      decoder_layers=n_layers, encoder_attention_heads=n_heads,
                                      decoder_attention_heads=n_heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                                      pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                                      forced_eos_token_id=2, architectures=["BartForConditionalGeneration"]),
    }[kind]()


TOKENIZERS = {"bert": bert_tokenizer, "distilbert": bert_tokenizer, "t5": bert_tokenizer,
              "roberta": roberta_tokenizer, "bart": roberta_tokenizer, "gpt2": gpt2_tokenizer,
              "llama": gpt2_tokenizer}
MODEL_CLASSES = {"bert": tf.BertForMaskedLM, "distilbert": tf.DistilBertModel, "roberta": tf.RobertaModel,
                 "gpt2": tf.GPT2LMHeadModel, "t5": tf.T5ForConditionalGeneration,
                 "bart": tf.BartForConditionalGeneration, "llama": tf.LlamaForCausalLM}


def save_tiny(kind: str, folder: Path, seed: int = 0) -> Path:
    """Save a random-init model of `kind` with its tokenizer to `folder`; returns the folder."""
    torch.manual_seed(seed)
    MODEL_CLASSES[kind](tiny_config(kind)).save_pretrained(folder)
    TOKENIZERS[kind]().save_pretrained(folder)
    return folder


def save_tiny_gemma_style(folder: Path) -> Path:
    """A tiny Gemma 2 decoder with gemma_style_tokenizer (no pre-tokenizer: degenerate word ids)."""
    tokenizer = gemma_style_tokenizer()
    config = tf.Gemma2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8, pad_token_id=0,
                             bos_token_id=2, eos_token_id=1, architectures=["Gemma2ForCausalLM"])
    torch.manual_seed(0)
    tf.Gemma2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_1x1(folder: Path) -> Path:
    """A BERT masked LM with one layer of one head: every layer and head control has a single value."""
    config = tf.BertConfig(vocab_size=30522, hidden_size=SMALL["hidden"], num_hidden_layers=1, num_attention_heads=1,
                           intermediate_size=SMALL["ffn"], architectures=["BertForMaskedLM"])
    torch.manual_seed(0)
    tf.BertForMaskedLM(config).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return folder


FAVOURED_BIAS = 10.0  # an output bias that puts a token first whatever the text, about half of the mass


def save_tiny_bert_favouring_special(folder: Path) -> Path:
    """The tiny BERT masked LM whose output bias favours [MASK] (first) and [PAD] (second): with
    special tokens offered, they top every mask's candidates."""
    torch.manual_seed(0)
    model = tf.BertForMaskedLM(tiny_config("bert"))
    tokenizer = bert_tokenizer()
    with torch.no_grad():
        model.cls.predictions.bias[tokenizer.mask_token_id] = FAVOURED_BIAS
        model.cls.predictions.bias[tokenizer.pad_token_id] = FAVOURED_BIAS - 1
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_gpt2_favouring_special(folder: Path) -> Path:
    """The tiny GPT-2 whose final layer norm's bias points at the (tied) embedding of <|endoftext|>
    (id 0), which it makes long: <|endoftext|> becomes every position's most probable next token."""
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tiny_config("gpt2"))
    with torch.no_grad():
        direction = torch.zeros(model.config.n_embd)
        direction[0] = 2.5  # logit of id 0: its embedding · the final hidden state, 6.25 ± 2.5; the others' ± 0.3
        model.transformer.wte.weight[0] = direction
        model.transformer.ln_f.bias.copy_(direction)
    model.save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_gemma2(folder: Path) -> Path:
    """A decoder that scales by query_pre_attn_scalar**-0.5 (not 1/sqrt(d_head)), soft-caps its
    scores inside the attention function and shares key heads (grouped-query attention)."""
    config = tf.Gemma2Config(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=16,
                             attn_logit_softcapping=0.01, sliding_window=4, pad_token_id=0, bos_token_id=101,
                             eos_token_id=102, architectures=["Gemma2ForCausalLM"])
    torch.manual_seed(0)
    tf.Gemma2ForCausalLM(config).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_series(folder: Path, steps=SERIES_STEPS) -> Path:
    """A Trainer-like series of tiny BERTs: checkpoint-N folders, the tokenizer in the folder above.

    Each step has its own weights, initialised wider and wider so that attention sharpens with
    the step, as in training.
    """
    bert_tokenizer().save_pretrained(folder)
    for index, step in enumerate(steps):
        torch.manual_seed(index)
        config = tiny_config("bert")
        config.initializer_range = 0.2 * (index + 1)
        MODEL_CLASSES["bert"](config).save_pretrained(folder / f"checkpoint-{step}")
    return folder


def save_tiny_mlm_series(folder: Path, steps=SERIES_STEPS, vocab_sentences: int = 300, positions: int = 512) -> Path:
    """A Trainer-like series of tiny random BERT masked LMs on the demo corpus' word vocabulary:
    checkpoint-N folders with config, weights and trainer_state.json; the tokenizer above them.
    `positions`: the models' length limit (more than 512 for long runs)."""
    tokenizer = word_tokenizer(sentences(vocab_sentences), vocab_size=8000)
    tokenizer.save_pretrained(folder)
    history = [{"step": s, "loss": 6.0 / (1 + s / 50), "learning_rate": 1e-3} for s in range(10, max(steps) + 1, 10)]
    for index, step in enumerate(steps):
        torch.manual_seed(index)
        config = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=37, initializer_range=0.2 * (index + 1),
                               max_position_embeddings=positions, architectures=["BertForMaskedLM"])
        tf.BertForMaskedLM(config).save_pretrained(folder / f"checkpoint-{step}")
        state = {"global_step": step, "log_history": [e for e in history if e["step"] <= step]}
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps(state))
    return folder


def _llama_cpp_rope_order(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """q/k rows as llama.cpp stores them: each head's rotary pairs adjacent, where transformers keeps
    them as first half / second half (transformers undoes this when it reads a GGUF)."""
    rows, cols = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, cols).transpose(1, 2).reshape(rows, cols)


def write_llama_gguf(folder: Path, path: Path, architecture: str = "llama",
                     leave_out: tuple[str, ...] = ()) -> Path:
    """The Llama model saved in `folder` (e.g. by save_tiny("llama", ...)) as a float32 GGUF file, with its
    byte-level BPE tokenizer in the metadata; `architecture` is what the file claims to be and
    `leave_out` names GGUF tensors to omit (to make broken files)."""
    import gguf

    model = tf.LlamaForCausalLM.from_pretrained(folder)
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    config = model.config
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.head_dim)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if token in tokenizer.all_special_tokens else gguf.TokenType.NORMAL
                            for token, _ in vocab])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(merge) if isinstance(merge, list) else merge for merge in merges])
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    for name, weight in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        gguf_name = names.get_name(name, try_suffixes=(".weight",))
        projection = name.split(".")[-2]
        if projection in heads:
            weight = _llama_cpp_rope_order(weight, heads[projection])
        if gguf_name not in leave_out:
            writer.add_tensor(gguf_name, weight.float().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


LONGFORMER_TEXT = "the cat sat on the mat because it was warm"  # [CLS] + 10 words + [SEP]: 12 tokens


def save_tiny_llama(folder: Path, positions: int = 8192) -> Path:
    """For long runs (tiny_config's Llama stops at 128 positions): a Llama decoder with grouped-query attention (6 query heads share 2 key/value heads, as
    SmolLM2's 9 share 3), rotary positions and a byte-level tokenizer with no length limit."""
    config = tf.LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=positions,
                            bos_token_id=0, eos_token_id=0, architectures=["LlamaForCausalLM"])
    torch.manual_seed(0)
    tf.LlamaForCausalLM(config).save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_granite(folder: Path) -> Path:
    """A decoder whose logits are its LM head's divided by logits_scaling (Granite): more than the
    head models.core.lm_head applies, so its runs keep no final hidden states."""
    config = tf.GraniteConfig(vocab_size=400, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, logits_scaling=4.0,
                              bos_token_id=0, eos_token_id=0, pad_token_id=0, architectures=["GraniteForCausalLM"])
    torch.manual_seed(0)
    tf.GraniteForCausalLM(config).save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_gpt_oss(folder: Path) -> Path:
    """A decoder whose attention adds a learned "sink" logit per head to every softmax (GPT-OSS):
    weights a long run can't recompute from q and k."""
    config = tf.GptOssConfig(vocab_size=400, hidden_size=32, intermediate_size=16, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=8, num_local_experts=2,
                             num_experts_per_tok=1, sliding_window=4, max_position_embeddings=8192,
                             bos_token_id=0, eos_token_id=0, pad_token_id=0, architectures=["GptOssForCausalLM"])
    torch.manual_seed(0)
    model = tf.GptOssForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(2.0)  # a sink every head leans on
    model.save_pretrained(folder)
    gpt2_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_longformer(folder: Path) -> Path:
    """Longformer with a sliding window of 4 keys (2 on each side) and no global tokens by default: its
    attentions come back [batch, heads, n, window + 1], each query's weights over its local band."""
    config = tf.LongformerConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=37, attention_window=4, max_position_embeddings=600, pad_token_id=0,
                                 architectures=["LongformerForMaskedLM"])
    torch.manual_seed(0)
    tf.LongformerForMaskedLM(config).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return folder


def save_tiny_bigbird(folder: Path) -> Path:
    """BigBird with block-sparse attention: blocks of 4 tokens, one random block (block sparse from 45 tokens)."""
    config = tf.BigBirdConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=37, attention_type="block_sparse", block_size=4, num_random_blocks=1,
                              max_position_embeddings=600, pad_token_id=0, architectures=["BigBirdForMaskedLM"])
    torch.manual_seed(0)
    tf.BigBirdForMaskedLM(config).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return folder
