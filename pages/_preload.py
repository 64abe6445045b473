"""The app's modules, imported once per process before any page runs; app.py and every page
module import this first.

Streamlit runs each session's script in a thread of its own, and on a fresh server a link runs
the page's file itself (see _shared.run_app_instead). The sessions a class opens together would
then import torch, transformers and models at the same time, and a thread could see a module
another has only half run ("cannot import name 'AttentionRun' from 'models'", or a deadlock
between two modules' import locks). Importing this module is serialized by Python's own import
lock: the first thread imports everything, the others wait until it is done."""
from pages._quiet_logs import quiet_torchao_import_noise

quiet_torchao_import_noise()  # before the imports below load transformers, which loads torchao

from pages import adaptive_span, checkpoints, compare, heads, heads_at_work, scaling, sparse  # noqa: E402, F401
