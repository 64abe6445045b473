"""Run a loaded model on a text and keep its attention as numpy arrays."""
import contextlib
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from transformers import BatchEncoding

from models.core.attention_fn import recording
from models.core.loading import LoadedModel
from models.core.scores import ScoreStack, capture_scores
from models.core.token_text import special_token_ids, token_labels


class RunError(ValueError):
    """The text can't be run; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class AttentionRun:
    """One forward pass on one text. Matrices have query rows and key columns; rows sum to 1.

    For encoder-decoder models `tokens`/`attentions` are the encoder's, and the decoder_* and
    cross_attentions fields are set. n = len(tokens), m = len(decoder_tokens).
    """

    model_spec: str
    tokens: list[str]  # n tokens as the tokenizer writes them ("##ing", "Ġthe", "▁the")
    attentions: np.ndarray  # [layers, heads, n, n] float32
    causal: bool  # a query sees only keys j <= i
    segment_ids: np.ndarray  # [n] int8: 0 sentence A, 1 sentence B, -1 special token
    special_mask: np.ndarray  # [n] bool: tokens the tokenizer added ([CLS], [SEP], <s>, </s>)
    n_input_tokens: int  # tokens before truncation; > n when the text was cut
    labels: list[str]  # n tokens as a reader sees them, decoded by the tokenizer ("Ã¡n" -> "án"; core.token_text)
    decoder_tokens: list[str] | None = None  # m tokens fed to the decoder
    decoder_labels: list[str] | None = None  # m, as `labels`
    decoder_attentions: np.ndarray | None = None  # [layers, heads, m, m] float32, causal
    cross_attentions: np.ndarray | None = None  # [layers, heads, m, n] float32
    score_stacks: dict[str, ScoreStack] | None = None  # with_scores=True: q, k, raw scores per stack

    @property
    def scores(self) -> np.ndarray | None:
        """[layers, heads, n, n] raw q.k before the scale (with_scores=True), of `attentions`' stack."""
        return None if self.score_stacks is None else next(iter(self.score_stacks.values())).scores

    def __post_init__(self):
        # a run is shared between sessions without copying (pages/_shared.py): never written to
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def num_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def num_heads(self) -> int:
        return self.attentions.shape[1]

    @property
    def truncated(self) -> bool:
        return self.n_input_tokens > self.n


@dataclass(frozen=True, eq=False)
class AttentionStack:
    """One family of attention matrices of a run: queries from one token list, keys from another."""

    name: str  # "self-attention", "encoder", "decoder" or "cross"
    attentions: np.ndarray  # [layers, heads, q, k] float32
    query_tokens: list[str]  # q, as the tokenizer writes them
    key_tokens: list[str]  # k
    causal: bool
    query_labels: list[str]  # q, as a reader sees them (AttentionRun.labels)
    key_labels: list[str]  # k


def attention_stacks(run: AttentionRun) -> dict[str, AttentionStack]:
    """The run's stacks by name: one for encoders and decoders, three for encoder-decoders."""
    encoder, decoder = (run.tokens, run.labels), (run.decoder_tokens, run.decoder_labels)
    if run.decoder_tokens is None:
        return {"self-attention": _stack("self-attention", run.attentions, encoder, encoder, run.causal)}
    return {
        "encoder": _stack("encoder", run.attentions, encoder, encoder, False),
        "decoder": _stack("decoder", run.decoder_attentions, decoder, decoder, True),
        "cross": _stack("cross", run.cross_attentions, decoder, encoder, False),
    }


def _stack(name: str, attentions: np.ndarray, queries: tuple[list[str], list[str]],
           keys: tuple[list[str], list[str]], causal: bool) -> AttentionStack:
    """queries, keys: (tokens, labels)."""
    return AttentionStack(name, attentions, queries[0], keys[0], causal, queries[1], keys[1])


def layers_to_array(attentions: tuple[torch.Tensor, ...]) -> np.ndarray:
    """tuple of layers x [batch=1, heads, q, k] -> float32 [layers, heads, q, k]."""
    return torch.stack([a[0].float() for a in attentions]).numpy()


def check_text(text: str, text_pair: str | None = None, max_chars: int | None = None) -> None:
    """A RunError for a text no model runs: empty, or longer than `max_chars` (a server's cap)."""
    if not text or not text.strip():
        raise RunError("The text is empty: type something to look at.")
    length = len(text) + len(text_pair or "")
    if max_chars is not None and length > max_chars:
        raise RunError(f"The text has {length:,} characters; this server runs at most {max_chars:,}. "
                       "Shorten it: it stays in the box.")


def check_token_by_token(loaded: LoadedModel, name: str, layers: tuple[torch.Tensor, ...], queries: int,
                         keys: int) -> None:
    """A RunError unless every layer's weights [batch, heads, q, k] are queries × keys, so that rows and
    columns are the tokens they are drawn under. Longformer, for one, returns each query's weights
    over its local window [.., n, window + 1]."""
    for weights in layers:
        q, k = weights.shape[-2:]
        if (q, k) != (queries, keys):
            model_type = loaded.config.model_type
            window = " relative to a local window" if hasattr(loaded.config, "attention_window") else ""
            raise RunError(f"This model family ({model_type}) returns its attention{window} ({name}: {q} × {k} "
                           f"for {queries} × {keys} tokens), not token × token; it isn't supported on this page.")


def encode(loaded: LoadedModel, text: str, text_pair: str | None = None, max_chars: int | None = None):
    """Tokenize for the model, truncated to loaded.max_tokens. Returns (encoding, untruncated count)."""
    check_text(text, text_pair, max_chars)
    pair = text_pair if text_pair and text_pair.strip() and loaded.kind != "encoder-decoder" else None
    tokenize = functools.partial(loaded.tokenizer, text, pair, return_tensors="pt", return_special_tokens_mask=True)
    encoding = tokenize()
    full_length = encoding["input_ids"].shape[1]
    if full_length > loaded.max_tokens:  # tokenized again only when it must be cut
        encoding = tokenize(truncation=True, max_length=loaded.max_tokens)
    if encoding["input_ids"].shape[1] == 0:
        raise RunError("The text gives no tokens for this model.")
    rows = getattr(loaded.config.get_text_config(), "vocab_size", None)
    if isinstance(rows, int) and int(encoding["input_ids"].max()) >= rows:  # the embedding would raise IndexError
        raise RunError(f"The tokenizer gives this text token ids past the model's {rows:,} embedding rows: it isn't "
                       "the model's own tokenizer.")
    return encoding, full_length


def model_inputs(loaded: LoadedModel, encoding, decoder_text: str | None = None) -> dict[str, torch.Tensor]:
    """What the model's forward gets from an encoding (of `encode`): input_ids [1, n], attention_mask
    [1, n], and token_type_ids [1, n] (sentence A 0, B 1) for encoders whose tokenizer gives them,
    as BERT's; never for decoders or encoder-decoders (GPT-2 would add them through its token
    embeddings). For an encoder-decoder, `decoder_text` adds decoder_input_ids [1, m]: that text's
    tokens shifted right (teacher forcing); without it the inputs suit the encoder alone. The one
    rule for every forward pass on a user's text: runs, fill-mask, enforced patterns, losses."""
    names = ("input_ids", "attention_mask") + (("token_type_ids",) if loaded.kind == "encoder" else ())
    inputs = {name: encoding[name] for name in names if name in encoding}
    if loaded.kind == "encoder-decoder" and decoder_text is not None:
        inputs["decoder_input_ids"] = loaded.model.prepare_decoder_input_ids_from_labels(
            labels=decoder_target_ids(loaded, decoder_text))
    return inputs


def encode_ids(loaded: LoadedModel, input_ids: Sequence[int]):
    """Token ids as encode() gives them, run as they are (no special tokens added), truncated to
    loaded.max_tokens. Returns (encoding, untruncated count)."""
    ids = [int(i) for i in input_ids]
    vocab_size = loaded.config.get_text_config().vocab_size
    if not ids:
        raise RunError("No tokens to run.")
    if loaded.kind == "encoder-decoder":
        raise RunError(f"'{loaded.spec}' is an encoder-decoder: give it a text, not token ids.")
    if not all(0 <= i < vocab_size for i in ids):
        raise RunError(f"Token ids must lie in 0..{vocab_size - 1}, the vocabulary of '{loaded.spec}'.")
    if max(ids) >= len(loaded.tokenizer):  # embedding rows past the tokenizer (padded vocabularies)
        raise RunError(f"Token id {max(ids)} has no token in the tokenizer of '{loaded.spec}' (ids 0.."
                       f"{len(loaded.tokenizer) - 1}), so it can't be shown.")
    kept = torch.tensor([ids[:loaded.max_tokens]])  # [1, n]
    special = torch.isin(kept, torch.tensor(special_token_ids(loaded.tokenizer), dtype=kept.dtype))
    return BatchEncoding({"input_ids": kept, "attention_mask": torch.ones_like(kept),
                          "special_tokens_mask": special.long()}), len(ids)


def _segments(encoding) -> np.ndarray:
    ids = encoding.sequence_ids(0) if encoding.is_fast else None
    if ids is None:
        special = encoding["special_tokens_mask"][0].numpy().astype(bool)
        return np.where(special, -1, 0).astype(np.int8)
    return np.array([-1 if s is None else s for s in ids], dtype=np.int8)


def decoder_target(text: str, text_pair: str | None) -> str:
    """What an encoder-decoder's decoder reads (teacher-forced): sentence B, else the text itself."""
    return text_pair if text_pair and text_pair.strip() else text


def decoder_target_ids(loaded: LoadedModel, target: str) -> torch.Tensor:
    """[1, m] the tokens an encoder-decoder's decoder should produce for `target`."""
    return loaded.tokenizer(text_target=target, truncation=True, max_length=loaded.max_tokens,
                            return_tensors="pt")["input_ids"]


def named_attentions(loaded: LoadedModel, outputs) -> dict[str, tuple[torch.Tensor, ...]]:
    """The model's output attentions by stack name, as in attention_stacks (layers of [batch, heads, q, k])."""
    seq2seq = loaded.kind == "encoder-decoder"
    if not getattr(outputs, "encoder_attentions" if seq2seq else "attentions", None):
        raise RunError(f"'{loaded.spec}' gives no attention weights: a {loaded.config.model_type} model has "
                       "no attention layers, or doesn't report them.")
    return ({"encoder": outputs.encoder_attentions, "decoder": outputs.decoder_attentions,
             "cross": outputs.cross_attentions} if seq2seq else {"self-attention": outputs.attentions})


def run_attention(loaded: LoadedModel, text: str | Sequence[int], text_pair: str | None = None,
                  with_scores: bool = False, max_chars: int | None = None) -> AttentionRun:
    """Attention of every layer and head for `text` (and sentence B `text_pair`).

    `text` may also be token ids, run as they are (models.analysis.induction's probe: random ids
    decode to a text that doesn't tokenize back to them).

    For encoder-decoder models `text_pair` is the decoder's text (teacher-forced); without it
    the decoder reads `text` itself. with_scores=True also keeps the pre-softmax scores
    (models.core.scores; raises ScoresUnavailable where a model can't give them).
    `max_chars` refuses longer texts with a RunError (a server's cap).
    """
    if isinstance(text, str):
        encoding, full_length = encode(loaded, text, text_pair, max_chars)
        inputs = model_inputs(loaded, encoding, decoder_target(text, text_pair))
    else:
        encoding, full_length = encode_ids(loaded, text)
        inputs = model_inputs(loaded, encoding)
    tokenizer = loaded.tokenizer
    decoder_tokens = decoder_labels = None
    if loaded.kind == "encoder-decoder":
        decoder_ids = inputs["decoder_input_ids"][0].tolist()
        decoder_tokens = tokenizer.convert_ids_to_tokens(decoder_ids)
        decoder_labels = token_labels(tokenizer, decoder_ids, decoder_tokens)
    with torch.inference_mode(), contextlib.ExitStack() as hooks:
        calls = hooks.enter_context(recording()) if with_scores else None
        outputs = loaded.model(**inputs, output_attentions=True, use_cache=False)
    seq2seq = loaded.kind == "encoder-decoder"
    named = named_attentions(loaded, outputs)
    n, m = inputs["input_ids"].shape[1], len(decoder_tokens or ())
    sizes = {"self-attention": (n, n), "encoder": (n, n), "decoder": (m, m), "cross": (m, n)}
    for name, layers in named.items():
        check_token_by_token(loaded, name, layers, *sizes[name])
    ids = encoding["input_ids"][0].tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids)
    return AttentionRun(
        model_spec=loaded.spec,
        tokens=tokens,
        attentions=layers_to_array(named["encoder"] if seq2seq else named["self-attention"]),
        causal=loaded.kind == "decoder",
        segment_ids=_segments(encoding),
        special_mask=encoding["special_tokens_mask"][0].numpy().astype(bool),
        n_input_tokens=full_length,
        labels=token_labels(tokenizer, ids, tokens),
        decoder_tokens=decoder_tokens,
        decoder_labels=decoder_labels,
        decoder_attentions=layers_to_array(named["decoder"]) if seq2seq else None,
        cross_attentions=layers_to_array(named["cross"]) if seq2seq else None,
        score_stacks=capture_scores(calls, named) if with_scores else None,
    )
