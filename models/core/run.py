"""Run a loaded model on a text and keep its attention: every weight for short runs, what
recomputes them for long ones (models.core.long_run)."""
import contextlib
import functools
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from transformers import BatchEncoding

from models.core import lm_head, long_run, native_sparse, tiles
from models.core.attention_fn import recording
from models.core.loading import LoadedModel
from models.core.scores import ScoreStack, ScoresUnavailable, capture_scores
from models.core.stacks import CROSS, DECODER, ENCODER, SELF, is_causal, named_attentions
from models.core.tiles import FullWeights, StackWeights
from models.core.token_text import special_token_ids, token_labels

SHORT_TOKENS = 512  # runs this short keep every weight: today's runs, which every page reads whole
FULL_WEIGHTS_BYTES = 512 << 20  # longer runs keep every weight while they take at most this


class RunError(ValueError):
    """The text can't be run; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class AttentionRun:
    """One forward pass on one text. Matrices have query rows and key columns; rows sum to 1.

    For encoder-decoder models `tokens`/`attentions` are the encoder's, and the decoder_* and
    cross_attentions fields are set. n = len(tokens), m = len(decoder_tokens).

    A long run (see keeps_full_weights) has no `attentions`: `weights(stack)` recomputes any
    block of any head from the kept queries and keys (`recomputed`), and models.core.tiles
    builds every view from such blocks. `head()` and `window()` work for every run.
    """

    model_spec: str
    tokens: list[str]  # n tokens as the tokenizer writes them ("##ing", "Ġthe", "▁the")
    attentions: np.ndarray | None  # [layers, heads, n, n] float32; None for a long run
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
    recomputed: dict[str, "long_run.RecomputedStack"] | None = None  # a long run's stacks by name
    notice: str | None = None  # why the run is shorter than the model's limit, beyond `truncated`
    final_hidden: np.ndarray | None = None  # [n, hidden] float32: a causal LM's last_hidden_state (models.core.lm_head)

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
        return self.weights().shape[0]

    @property
    def num_heads(self) -> int:
        return self.weights().shape[1]

    def weights(self, stack: str | None = None) -> StackWeights:
        """One stack's weights by name (models.core.stacks); the first stack (self-attention or
        encoder) by default. Kept whole for short runs, recomputed block by block for long ones."""
        if self.recomputed is not None:
            return self.recomputed[stack or next(iter(self.recomputed))]
        arrays = {SELF: self.attentions, ENCODER: self.attentions, DECODER: self.decoder_attentions,
                  CROSS: self.cross_attentions}
        name = stack or (ENCODER if self.decoder_tokens is not None else SELF)
        return FullWeights(name, arrays[name], is_causal(name, self.causal))

    def head(self, layer: int, head: int, stack: str | None = None) -> np.ndarray:
        """[q, k] float32: one head's weights, exact (recomputed for a long run: q x k x 4 bytes)."""
        weights = self.weights(stack)
        _, _, q, k = weights.shape
        return weights.block(layer, slice(head, head + 1), slice(0, q), slice(0, k))[0].numpy()

    def window(self, layer: int, head: int | None, rows: slice, cols: slice, stack: str | None = None) -> np.ndarray:
        """[r, c] exact weights of queries `rows` x keys `cols` (at most tiles.MAX_WINDOW a side);
        head None: the layer mean."""
        return tiles.window(self.weights(stack), layer, head, rows, cols)

    @property
    def truncated(self) -> bool:
        return self.n_input_tokens > self.n


@dataclass(frozen=True, eq=False)
class AttentionStack:
    """One family of attention matrices of a run: queries from one token list, keys from another."""

    name: str  # "self-attention", "encoder", "decoder" or "cross"
    attentions: np.ndarray | None  # [layers, heads, q, k] float32; None for a long run
    query_tokens: list[str]  # q, as the tokenizer writes them
    key_tokens: list[str]  # k
    causal: bool
    query_labels: list[str]  # q, as a reader sees them (AttentionRun.labels)
    key_labels: list[str]  # k
    weights: StackWeights  # the same weights, kept or recomputed (models.core.tiles)


def attention_stacks(run: AttentionRun) -> dict[str, AttentionStack]:
    """The run's stacks by name: one for encoders and decoders, three for encoder-decoders."""
    encoder, decoder = (run.tokens, run.labels), (run.decoder_tokens, run.decoder_labels)
    if run.decoder_tokens is None:
        return {SELF: _stack(run, SELF, run.attentions, encoder, encoder)}
    return {
        ENCODER: _stack(run, ENCODER, run.attentions, encoder, encoder),
        DECODER: _stack(run, DECODER, run.decoder_attentions, decoder, decoder),
        CROSS: _stack(run, CROSS, run.cross_attentions, decoder, encoder),
    }


def _stack(run: AttentionRun, name: str, attentions: np.ndarray | None, queries: tuple[list[str], list[str]],
           keys: tuple[list[str], list[str]]) -> AttentionStack:
    """queries, keys: (tokens, labels)."""
    return AttentionStack(name, attentions, queries[0], keys[0], is_causal(name, run.causal), queries[1], keys[1],
                          run.weights(name))


def layers_to_array(attentions: tuple[torch.Tensor, ...]) -> np.ndarray:
    """tuple of layers x [batch=1, heads, q, k] -> float32 [layers, heads, q, k] on the CPU."""
    return torch.stack([a[0].float() for a in attentions]).cpu().numpy()


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
    rule for every forward pass on a user's text: runs, fill-mask, enforced patterns, losses. The
    tensors are on the model's device."""
    names = ("input_ids", "attention_mask") + (("token_type_ids",) if loaded.kind == "encoder" else ())
    inputs = {name: encoding[name] for name in names if name in encoding}
    if loaded.kind == "encoder-decoder" and decoder_text is not None:
        inputs["decoder_input_ids"] = loaded.model.prepare_decoder_input_ids_from_labels(
            labels=decoder_target_ids(loaded, decoder_text))
    return {name: value.to(loaded.device) for name, value in inputs.items()}


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


def model_attentions(loaded: LoadedModel, outputs) -> dict[str, tuple[torch.Tensor, ...]]:
    """The model's output attentions by stack name (models.core.stacks.named_attentions); a RunError
    for a model that reports none."""
    seq2seq = loaded.kind == "encoder-decoder"
    if not getattr(outputs, "encoder_attentions" if seq2seq else "attentions", None):
        raise RunError(f"'{loaded.spec}' gives no attention weights: a {loaded.config.model_type} model has "
                       "no attention layers, or doesn't report them.")
    return named_attentions(outputs, seq2seq)


def full_weights_bytes(loaded: LoadedModel, n: int, m: int = 0) -> int:
    """Bytes of every weight of a run of n tokens (m decoder tokens): layers x heads x q x k x 4, all stacks."""
    squares = n * n + m * m + m * n if loaded.kind == "encoder-decoder" else n * n
    heads = getattr(loaded.config.get_text_config(), "num_attention_heads", 0)  # 0: no attention (Mamba)
    return 4 * loaded.num_layers * heads * squares


def keeps_full_weights(loaded: LoadedModel, n: int, m: int = 0) -> bool:
    """Does a run keep every weight (run.attentions)? Always up to SHORT_TOKENS tokens; longer while
    they take at most FULL_WEIGHTS_BYTES (a small model's). Other runs are long runs (models.core.long_run)."""
    return max(n, m) <= SHORT_TOKENS or full_weights_bytes(loaded, n, m) <= FULL_WEIGHTS_BYTES


def full_weights_tokens(loaded: LoadedModel) -> int:
    """The most tokens a run of `loaded` keeps every weight for (keeps_full_weights): SHORT_TOKENS, or
    more for a small model; at most loaded.max_tokens."""
    per_square = full_weights_bytes(loaded, 1, 1)  # bytes per token² (all stacks)
    fits = math.isqrt(FULL_WEIGHTS_BYTES // per_square) if per_square else loaded.max_tokens
    return min(loaded.max_tokens, max(SHORT_TOKENS, fits))


def first_tokens(loaded: LoadedModel, limit: int) -> LoadedModel:
    """The same model with texts cut to `limit` tokens (encode truncates to max_tokens): for a
    computation that keeps every weight of every head, run on the start of a long text."""
    return replace(loaded, max_tokens=min(limit, loaded.max_tokens))


def long_run_tokens(loaded: LoadedModel, text: str, text_pair: str | None = None) -> int | None:
    """The text's token count (before any cut) when run_attention would make it a long run (no
    `attentions`), else None; tokenizes only."""
    if native_sparse.is_native_sparse(loaded.config):
        return None
    encoding, full_length = encode(loaded, text, text_pair)
    m = decoder_target_ids(loaded, decoder_target(text, text_pair)).shape[1] if loaded.kind == "encoder-decoder" else 0
    return None if keeps_full_weights(loaded, encoding["input_ids"].shape[1], m) else full_length


def first_tokens_notice(what: str, limit: int, n: int) -> str:
    """Why a page's computation reads only the first `limit` of a text's n tokens, for the user."""
    return (f"{what} keeps every weight of every head, so it runs on the first {limit:,} tokens of this "
            f"{n:,}-token text.")


def run_keeping_weights(loaded: LoadedModel, text: str, text_pair: str | None = None, max_chars: int | None = None,
                        limit: int | None = None) -> AttentionRun:
    """run_attention that always keeps every weight (`attentions`): a text that would make a long run
    runs on its first `limit` tokens (full_weights_tokens by default), for computations that read
    every weight of every head at once (a checkpoint series, two models compared)."""
    check_text(text, text_pair, max_chars)
    if long_run_tokens(loaded, text, text_pair) is not None:
        loaded = first_tokens(loaded, limit or full_weights_tokens(loaded))
    return run_attention(loaded, text, text_pair, max_chars=max_chars)


def cut_notice(what: str, run: AttentionRun, max_tokens: int) -> str | None:
    """first_tokens_notice when run_keeping_weights cut the text short of the model's own limit
    `max_tokens` (LoadedModel.max_tokens), else None."""
    return first_tokens_notice(what, run.n, run.n_input_tokens) if run.n < min(run.n_input_tokens, max_tokens) \
        else None


def check_memory(loaded: LoadedModel, n: int, needed: int) -> None:
    free = long_run.available_memory()
    if needed > free:
        raise RunError(f"A run of {n:,} tokens of '{loaded.spec}' needs about {needed / 2**30:.1f} GB of memory and "
                       f"{free / 2**30:.1f} GB are free: shorten the text (it stays in the box) or try again later.")


def _user_error(fn, *args):
    """fn(*args), its NativeSparseError (a message for the user) as a RunError."""
    try:
        return fn(*args)
    except native_sparse.NativeSparseError as error:
        raise RunError(str(error)) from error


def _short_instead(loaded: LoadedModel, text: str, text_pair: str | None, with_scores: bool,
                   max_chars: int | None, why: str) -> AttentionRun:
    """The run cut to SHORT_TOKENS, with a notice, for a model a long run can't recompute."""
    short = run_attention(replace(loaded, max_tokens=min(loaded.max_tokens, SHORT_TOKENS)), text, text_pair,
                          with_scores, max_chars, tiled=False)
    return replace(short, notice=f"The text is cut to {SHORT_TOKENS} tokens: '{loaded.spec}' "
                                 f"({loaded.config.model_type}) runs longer texts only if every weight can be "
                                 f"recomputed from queries and keys, and {why}.")


def _forward(loaded: LoadedModel) -> torch.nn.Module:
    """What a run calls: a decoder's base model, whose last hidden states give any position's logits
    on demand (models.core.lm_head), not the logits of every position (n x vocab floats)."""
    return loaded.model.base_model if loaded.kind == "decoder" else loaded.model


def _final_hidden(loaded: LoadedModel, inputs: dict[str, torch.Tensor], hidden: torch.Tensor | None) -> np.ndarray | None:
    """hidden [1, n, hidden] as a run keeps it: for a causal LM whose head lm_head.final_logits reproduces."""
    if hidden is None or loaded.kind != "decoder" or not lm_head.reproduces_logits(loaded, inputs["input_ids"]):
        return None
    return hidden[0].float().cpu().numpy()


def run_attention(loaded: LoadedModel, text: str | Sequence[int], text_pair: str | None = None,
                  with_scores: bool = False, max_chars: int | None = None, progress: tiles.Progress | None = None,
                  tiled: bool | None = None) -> AttentionRun:
    """Attention of every layer and head for `text` (and sentence B `text_pair`).

    `text` may also be token ids, run as they are (models.analysis.induction's probe: random ids
    decode to a text that doesn't tokenize back to them).

    For encoder-decoder models `text_pair` is the decoder's text (teacher-forced); without it
    the decoder reads `text` itself. with_scores=True also keeps the pre-softmax scores
    (models.core.scores; raises ScoresUnavailable where a model can't give them, and for long runs).
    `max_chars` refuses longer texts with a RunError (a server's cap). A causal LM's run keeps its
    final hidden states (`final_hidden`), from which predictions.run_next_tokens gives the next
    token at any position without running the model again.

    Runs that keeps_full_weights refuses are long runs (models.core.long_run): `progress(done,
    total)` is called after each attention layer, and whatever it raises stops the run, which
    then keeps nothing; a model whose attention can't be recomputed runs its first SHORT_TOKENS
    tokens instead, with a `notice`. `tiled` forces (True) or forbids (False) a long run. A run
    that wouldn't fit in the memory available now is refused with a RunError before it starts.
    Native sparse models (Longformer, BigBird) come back as n x n (models.core.native_sparse).
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
    n, m = inputs["input_ids"].shape[1], len(decoder_tokens or ())
    ids = encoding["input_ids"][0].tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids)
    common = dict(
        model_spec=loaded.spec,
        tokens=tokens,
        causal=loaded.kind == "decoder",
        segment_ids=_segments(encoding),
        special_mask=encoding["special_tokens_mask"][0].numpy().astype(bool),
        n_input_tokens=full_length,
        labels=token_labels(tokenizer, ids, tokens),
        decoder_tokens=decoder_tokens,
        decoder_labels=decoder_labels,
    )
    # a native sparse model computes its own attention: never tiled (BigBird's probe would switch it to full)
    native = native_sparse.is_native_sparse(loaded.config)
    if tiled if tiled is not None else not (native or keeps_full_weights(loaded, n, m)):
        try:
            plan = long_run.call_plan(loaded, inputs)
            if with_scores:
                raise ScoresUnavailable(f"Pre-softmax scores of every head are kept for runs of at most "
                                        f"{SHORT_TOKENS} tokens; this text has {n:,}.")
            check_memory(loaded, n, long_run.long_kept_bytes(plan, n, m) + long_run.working_bytes(loaded, n, m))
            stacks, hidden = long_run.tiled_forward(loaded, inputs, plan, progress)
        except long_run.NotRecomputable as why:
            if tiled:
                raise RunError(f"'{loaded.spec}' can't run in tiles: {why}.") from why
            return _short_instead(loaded, text, text_pair, with_scores, max_chars, str(why))
        return AttentionRun(**common, attentions=None, recomputed=stacks,
                            final_hidden=_final_hidden(loaded, inputs, hidden))
    if native:
        _user_error(native_sparse.check_length, loaded.model, n)
    copies = 4 if with_scores else 2  # the model's tensors and our arrays (and the scores' q, k, scores, masks)
    check_memory(loaded, n, copies * full_weights_bytes(loaded, n, m) + long_run.working_bytes(loaded, n, m))
    with torch.inference_mode(), contextlib.ExitStack() as hooks:
        calls = hooks.enter_context(recording()) if with_scores else None
        outputs = _forward(loaded)(**inputs, output_attentions=True, use_cache=False)
    seq2seq = loaded.kind == "encoder-decoder"
    named = model_attentions(loaded, outputs)
    if native:
        if with_scores:
            raise ScoresUnavailable(f"'{loaded.spec}' ({loaded.config.model_type}) computes its own sparse attention, "
                                    "so its queries and keys can't be captured. Its weights show on the other pages.")
        first = _user_error(native_sparse.self_attentions, loaded.model, outputs, n, None)
    else:
        sizes = {SELF: (n, n), ENCODER: (n, n), DECODER: (m, m), CROSS: (m, n)}
        for name, layers in named.items():
            check_token_by_token(loaded, name, layers, *sizes[name])
        first = layers_to_array(named[ENCODER] if seq2seq else named[SELF])
    return AttentionRun(
        **common,
        attentions=first,
        decoder_attentions=layers_to_array(named[DECODER]) if seq2seq else None,
        cross_attentions=layers_to_array(named[CROSS]) if seq2seq else None,
        score_stacks=capture_scores(calls, named) if with_scores else None,
        final_hidden=_final_hidden(loaded, inputs, getattr(outputs, "last_hidden_state", None)),
    )
