"""Loading a model, the attention function every model runs with, and a run on a text."""
