"""Loading a model, the attention function every model runs with, and a run on a text."""
from models.core import quiet_logs  # noqa: F401  (before anything imports transformers)
