"""The attention stacks of a model's outputs, by name: one for encoders and decoders, three
(encoder, decoder, cross) for encoder-decoders. Read by name: `outputs[-1]` can be cross_attentions."""
import torch

SELF, ENCODER, DECODER, CROSS = "self-attention", "encoder", "decoder", "cross"


def named_attentions(outputs, encoder_decoder: bool) -> dict[str, tuple[torch.Tensor, ...] | None]:
    """Stack name -> the model's tuple of [batch, heads, q, k] weights, one per layer."""
    if encoder_decoder:
        return {ENCODER: outputs.encoder_attentions, DECODER: outputs.decoder_attentions,
                CROSS: outputs.cross_attentions}
    return {SELF: outputs.attentions}


def is_causal(name: str, decoder_only: bool) -> bool:
    """Does a query of this stack see only keys j <= i?"""
    return name == DECODER or (name == SELF and decoder_only)
