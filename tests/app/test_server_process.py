"""The server process's settings, made once by app.py (pages._shared.setup_process): its
long-lived objects out of the garbage collector's way, transformers' logging quiet, and none of
it done by importing `models`.

Streamlit collected garbage after every script run; with ~450,000 imported objects in view that
took ~230 ms after each click. Each check runs in a fresh interpreter: this test process has
imported and made far more than the server does, and set transformers' logging already.
"""
import logging
import subprocess
import sys
import tomllib

from pages._quiet_logs import NOISE, quiet_torchao_import_noise
from tests.helpers import ROOT

QUIET = "transformers.logging.get_verbosity() == transformers.logging.ERROR and " \
        "not transformers.utils.logging.is_progress_bar_enabled()"
IMPORT_MODELS = """
import importlib, logging, pkgutil
import transformers
print({quiet})
import models
for module in pkgutil.walk_packages(models.__path__, "models."):
    if not module.name.endswith("__main__"):  # command-line entry points run when imported
        importlib.import_module(module.name)
print({quiet})
print(logging.getLogger("torchao").filters == logging.getLogger("torch.utils._pytree").filters == [])
"""
SETUP = """
import gc
from pages import adaptive_span, checkpoints, compare, heads, scaling, sparse  # as app.py does
from pages._shared import setup_process
setup_process()
setup_process()  # app.py calls it on every run; it acts once
import pandas, plotly.graph_objects, torch, transformers
in_view = {{id(o) for o in gc.get_objects()}}
print(gc.get_freeze_count(), len(in_view))
print(all(id(cls) not in in_view for cls in (pandas.DataFrame, plotly.graph_objects.Figure, torch.nn.Module,
                                             transformers.PreTrainedModel)))
print({quiet})
"""
APP_RUN = """
import gc
import transformers
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=120)
at.query_params["model"] = "/no/such/model"  # the setup comes before any model is loaded
at.run()
print(gc.get_freeze_count() > 0, {quiet})
"""


def _run(probe: str) -> list[str]:
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe.format(quiet=QUIET, app=str(ROOT / "app.py"))],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().split("\n")


def test_importing_models_leaves_logging_as_it_was():
    assert _run(IMPORT_MODELS)[-3:] == ["False", "False", "True"]


def test_the_app_drops_torchao_import_noise_and_nothing_else():
    quiet_torchao_import_noise()
    quiet_torchao_import_noise()  # app.py runs on every click: added once
    for name, fragments in NOISE.items():
        logger = logging.getLogger(name)
        assert len(logger.filters) == 1
        noise = logging.LogRecord(name, logging.WARNING, __file__, 1, " ".join(fragments), None, None)
        other = logging.LogRecord(name, logging.WARNING, __file__, 1, "something else", None, None)
        assert not logger.filter(noise) and logger.filter(other)


def test_setup_freezes_the_imported_objects_and_quiets_transformers():
    counts, libraries_frozen, quiet = _run(SETUP)[-3:]
    frozen, in_view = map(int, counts.split())
    assert frozen > 20 * in_view  # what a collection still walks is a small fraction
    assert libraries_frozen == "True"  # pandas too: the pages import it, and it is ~30,000 objects
    assert quiet == "True"


def test_app_runs_the_setup():
    assert _run(APP_RUN)[-1] == "True True"


def test_streamlit_leaves_garbage_to_pythons_own_collector():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False  # ~6 ms after every click, frozen objects or not
