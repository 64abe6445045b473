"""Tokens as a reader should see them: their text, decoded by the tokenizer.

Byte-level BPE (GPT-2, RoBERTa, Llama 3, SmolLM2) writes a token as its UTF-8 bytes, each shown
as a printable stand-in: "Seán" is the pieces "Se" "Ã¡n" and "😀" the pieces "ĠðŁĺ" "Ģ". Only the
tokenizer can turn them back into text. A token that holds only part of a character's bytes
decodes to the replacement character "�", as in the tokenizer's own decode and the fill-mask
pipeline's token_str; the word it belongs to decodes whole.

    labels = token_labels(loaded.tokenizer, ids, tokens)   # ["Se", "án", "likes", "�", "�", ...]
    pieces_text(loaded.tokenizer, ["ĠðŁĺ", "Ģ"])            # "😀"
    special_token_ids(loaded.tokenizer)                     # [100, 102, 0, 101, 103] for BERT
"""
from transformers import PreTrainedTokenizerBase


def _readable(decoded: str, written: str) -> str:
    # a token that is only whitespace ("Ġ", "Ċ", "▁" alone) keeps its written form, which
    # viz.labels.display_token makes visible ("\n" for "Ċ")
    return decoded.strip() or written


def token_labels(tokenizer: PreTrainedTokenizerBase, ids: list[int], tokens: list[str]) -> list[str]:
    """[n] each token's text: tokenizer.decode([id]) without surrounding whitespace."""
    return [_readable(tokenizer.decode([i]), token) for i, token in zip(ids, tokens)]


def pieces_text(tokenizer: PreTrainedTokenizerBase, pieces: list[str]) -> str:
    """The text of consecutive tokens (a word's pieces), decoded together, without surrounding whitespace."""
    return _readable(tokenizer.decode(tokenizer.convert_tokens_to_ids(pieces)), "".join(pieces))


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids of the tokenizer's special tokens, sorted: the named ones ([CLS], [MASK], <|endoftext|>, ...)
    and every added token marked special (SmolLM2's <|im_start|>, <file_sep>, ...)."""
    added = (i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    return sorted(set(tokenizer.all_special_ids) | set(added))
