"""Tiny random-init models of each architecture, saved as plain Hugging Face folders.

They stand in for hub models (bert, roberta, distilbert, gpt2, t5, bart) in tests: same code
paths, a few hundred kilobytes each, no network.
"""
from pathlib import Path

import torch
import transformers as tf
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders, trainers

from models.core.loading import bundled_model_path

SMALL = dict(hidden=32, layers=2, heads=4, ffn=37)
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
        "bart": lambda: tf.BartConfig(vocab_size=bpe_vocab, d_model=h, encoder_layers=n_layers,
                                      decoder_layers=n_layers, encoder_attention_heads=n_heads,
                                      decoder_attention_heads=n_heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
                                      pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                                      forced_eos_token_id=2, architectures=["BartForConditionalGeneration"]),
    }[kind]()


TOKENIZERS = {"bert": bert_tokenizer, "distilbert": bert_tokenizer, "t5": bert_tokenizer,
              "roberta": roberta_tokenizer, "bart": roberta_tokenizer, "gpt2": gpt2_tokenizer}
MODEL_CLASSES = {"bert": tf.BertForMaskedLM, "distilbert": tf.DistilBertModel, "roberta": tf.RobertaModel,
                 "gpt2": tf.GPT2LMHeadModel, "t5": tf.T5ForConditionalGeneration,
                 "bart": tf.BartForConditionalGeneration}


def save_tiny(kind: str, folder: Path, seed: int = 0) -> Path:
    """Save a random-init model of `kind` with its tokenizer to `folder`; returns the folder."""
    torch.manual_seed(seed)
    MODEL_CLASSES[kind](tiny_config(kind)).save_pretrained(folder)
    TOKENIZERS[kind]().save_pretrained(folder)
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


def save_tiny_llama(folder: Path, positions: int = 8192) -> Path:
    """A Llama decoder with grouped-query attention (6 query heads share 2 key/value heads, as
    SmolLM2's 9 share 3), rotary positions and a byte-level tokenizer with no length limit."""
    config = tf.LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=positions,
                            bos_token_id=0, eos_token_id=0, architectures=["LlamaForCausalLM"])
    torch.manual_seed(0)
    tf.LlamaForCausalLM(config).save_pretrained(folder)
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
    """Longformer with a sliding window of 4 keys (2 on each side) and no global tokens by default."""
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
