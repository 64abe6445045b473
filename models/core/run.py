"""Run a loaded model on a text and keep its attention: every weight for short runs, what
recomputes them for long ones (models.core.long_run)."""
import contextlib
import functools
from dataclasses import dataclass, replace

import numpy as np
import torch

from models.core import long_run, native_sparse, tiles
from models.core.attention_fn import recording
from models.core.loading import LoadedModel
from models.core.scores import ScoresUnavailable, ScoreStack, capture_scores
from models.core.stacks import CROSS, DECODER, ENCODER, SELF, is_causal, named_attentions
from models.core.tiles import FullWeights, StackWeights

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
    decoder_tokens: list[str] | None = None  # m tokens fed to the decoder
    decoder_attentions: np.ndarray | None = None  # [layers, heads, m, m] float32, causal
    cross_attentions: np.ndarray | None = None  # [layers, heads, m, n] float32
    score_stacks: dict[str, ScoreStack] | None = None  # with_scores=True: q, k, raw scores per stack
    recomputed: dict[str, "long_run.RecomputedStack"] | None = None  # a long run's stacks by name
    notice: str | None = None  # why the run is shorter than the model's limit, beyond `truncated`

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
    query_tokens: list[str]  # q
    key_tokens: list[str]  # k
    causal: bool
    weights: StackWeights | None = None  # the same weights, kept or recomputed (models.core.tiles)


def attention_stacks(run: AttentionRun) -> dict[str, AttentionStack]:
    """The run's stacks by name: one for encoders and decoders, three for encoder-decoders."""
    if run.decoder_tokens is None:
        return {SELF: AttentionStack(SELF, run.attentions, run.tokens, run.tokens, run.causal, run.weights(SELF))}
    return {
        ENCODER: AttentionStack(ENCODER, run.attentions, run.tokens, run.tokens, False, run.weights(ENCODER)),
        DECODER: AttentionStack(DECODER, run.decoder_attentions, run.decoder_tokens, run.decoder_tokens, True,
                                run.weights(DECODER)),
        CROSS: AttentionStack(CROSS, run.cross_attentions, run.decoder_tokens, run.tokens, False, run.weights(CROSS)),
    }


def layers_to_array(attentions: tuple[torch.Tensor, ...]) -> np.ndarray:
    """tuple of layers x [batch=1, heads, q, k] -> float32 [layers, heads, q, k] on the CPU."""
    return torch.stack([a[0].float() for a in attentions]).cpu().numpy()


def encode(loaded: LoadedModel, text: str, text_pair: str | None = None, max_chars: int | None = None):
    """Tokenize for the model, truncated to loaded.max_tokens. Returns (encoding, untruncated count)."""
    if not text or not text.strip():
        raise RunError("The text is empty: type something to look at.")
    length = len(text) + len(text_pair or "")
    if max_chars is not None and length > max_chars:
        raise RunError(f"The text has {length:,} characters; this server runs at most {max_chars:,}. "
                       "Shorten it: it stays in the box.")
    pair = text_pair if text_pair and text_pair.strip() and loaded.kind != "encoder-decoder" else None
    tokenize = functools.partial(loaded.tokenizer, text, pair, return_tensors="pt", return_special_tokens_mask=True)
    encoding = tokenize()
    full_length = encoding["input_ids"].shape[1]
    if full_length > loaded.max_tokens:  # tokenized again only when it must be cut
        encoding = tokenize(truncation=True, max_length=loaded.max_tokens)
    if encoding["input_ids"].shape[1] == 0:
        raise RunError("The text gives no tokens for this model.")
    return encoding, full_length


def _segments(encoding) -> np.ndarray:
    ids = encoding.sequence_ids(0) if encoding.is_fast else None
    if ids is None:
        special = encoding["special_tokens_mask"][0].numpy().astype(bool)
        return np.where(special, -1, 0).astype(np.int8)
    return np.array([-1 if s is None else s for s in ids], dtype=np.int8)


def _decoder_inputs(loaded: LoadedModel, target: str) -> torch.Tensor:
    labels = loaded.tokenizer(text_target=target, truncation=True, max_length=loaded.max_tokens,
                              return_tensors="pt")["input_ids"]
    return loaded.model.prepare_decoder_input_ids_from_labels(labels=labels)


def full_weights_bytes(loaded: LoadedModel, n: int, m: int = 0) -> int:
    """Bytes of every weight of a run of n tokens (m decoder tokens): layers x heads x q x k x 4, all stacks."""
    squares = n * n + m * m + m * n if loaded.kind == "encoder-decoder" else n * n
    heads = getattr(loaded.config.get_text_config(), "num_attention_heads", 0)  # 0: no attention (Mamba)
    return 4 * loaded.num_layers * heads * squares


def keeps_full_weights(loaded: LoadedModel, n: int, m: int = 0) -> bool:
    """Does a run keep every weight (run.attentions)? Always up to SHORT_TOKENS tokens; longer while
    they take at most FULL_WEIGHTS_BYTES (a small model's). Other runs are long runs (models.core.long_run)."""
    return max(n, m) <= SHORT_TOKENS or full_weights_bytes(loaded, n, m) <= FULL_WEIGHTS_BYTES


def _check_memory(loaded: LoadedModel, n: int, needed: int) -> None:
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


def run_attention(loaded: LoadedModel, text: str, text_pair: str | None = None, with_scores: bool = False,
                  max_chars: int | None = None, progress: tiles.Progress | None = None,
                  tiled: bool | None = None) -> AttentionRun:
    """Attention of every layer and head for `text` (and sentence B `text_pair`).

    For encoder-decoder models `text_pair` is the decoder's text (teacher-forced); without it
    the decoder reads `text` itself. with_scores=True also keeps the pre-softmax scores
    (models.core.scores; raises ScoresUnavailable where a model can't give them, and for long runs).
    `max_chars` refuses longer texts with a RunError (a server's cap).

    Runs that keeps_full_weights refuses are long runs (models.core.long_run): `progress(done,
    total)` is called after each attention layer, and whatever it raises stops the run, which
    then keeps nothing; a model whose attention can't be recomputed runs its first SHORT_TOKENS
    tokens instead, with a `notice`. `tiled` forces (True) or forbids (False) a long run. A run
    that wouldn't fit in the memory available now is refused with a RunError before it starts.
    """
    encoding, full_length = encode(loaded, text, text_pair, max_chars)
    inputs = {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}
    if "token_type_ids" in encoding and loaded.kind == "encoder":
        inputs["token_type_ids"] = encoding["token_type_ids"]
    tokenizer = loaded.tokenizer
    decoder_tokens = None
    if loaded.kind == "encoder-decoder":
        target = text_pair if text_pair and text_pair.strip() else text
        inputs["decoder_input_ids"] = _decoder_inputs(loaded, target)
        decoder_tokens = tokenizer.convert_ids_to_tokens(inputs["decoder_input_ids"][0].tolist())
    inputs = {name: value.to(loaded.device) for name, value in inputs.items()}
    n, m = inputs["input_ids"].shape[1], len(decoder_tokens or ())
    common = dict(
        model_spec=loaded.spec,
        tokens=tokenizer.convert_ids_to_tokens(encoding["input_ids"][0].tolist()),
        causal=loaded.kind == "decoder",
        segment_ids=_segments(encoding),
        special_mask=encoding["special_tokens_mask"][0].numpy().astype(bool),
        n_input_tokens=full_length,
        decoder_tokens=decoder_tokens,
    )
    # a native sparse model computes its own attention: never tiled (BigBird's probe would switch it to full)
    native = native_sparse.is_native_sparse(loaded.config)
    if tiled if tiled is not None else not (native or keeps_full_weights(loaded, n, m)):
        try:
            plan = long_run.call_plan(loaded, inputs)
            if with_scores:
                raise ScoresUnavailable(f"Pre-softmax scores of every head are kept for runs of at most "
                                        f"{SHORT_TOKENS} tokens; this text has {n:,}.")
            _check_memory(loaded, n, long_run.long_kept_bytes(plan, n, m) + long_run.working_bytes(loaded, n, m))
            stacks = long_run.tiled_forward(loaded, inputs, plan, progress)
        except long_run.NotRecomputable as why:
            if tiled:
                raise RunError(f"'{loaded.spec}' can't run in tiles: {why}.") from why
            return _short_instead(loaded, text, text_pair, with_scores, max_chars, str(why))
        return AttentionRun(**common, attentions=None, recomputed=stacks)
    if native:
        _user_error(native_sparse.check_length, loaded.model, n)
    copies = 4 if with_scores else 2  # the model's tensors and our arrays (and the scores' q, k, scores, masks)
    _check_memory(loaded, n, copies * full_weights_bytes(loaded, n, m) + long_run.working_bytes(loaded, n, m))
    with torch.inference_mode(), contextlib.ExitStack() as hooks:
        calls = hooks.enter_context(recording()) if with_scores else None
        outputs = loaded.model(**inputs, output_attentions=True, use_cache=False)
    seq2seq = loaded.kind == "encoder-decoder"
    if not getattr(outputs, "encoder_attentions" if seq2seq else "attentions", None):
        raise RunError(f"'{loaded.spec}' gives no attention weights: a {loaded.config.model_type} model has "
                       "no attention layers, or doesn't report them.")
    named = named_attentions(outputs, seq2seq)
    first = (_user_error(native_sparse.self_attentions, loaded.model, outputs, n, None) if native
             else layers_to_array(named[ENCODER] if seq2seq else named[SELF]))
    return AttentionRun(
        **common,
        attentions=first,
        decoder_attentions=layers_to_array(named[DECODER]) if seq2seq else None,
        cross_attentions=layers_to_array(named[CROSS]) if seq2seq else None,
        score_stacks=capture_scores(calls, named) if with_scores else None,
    )
