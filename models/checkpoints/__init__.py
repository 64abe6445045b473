"""Checkpoint series: discovery, masked-LM predictions across steps, the training log, the trainer and the demo series (the Checkpoints page)."""
