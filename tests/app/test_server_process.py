"""The server process's settings: its long-lived objects out of the garbage collector's way.

Streamlit collected garbage after every script run; with ~450,000 imported objects in view that
took ~230 ms after each click (pages/_shared.freeze_imported_objects). The freeze is checked in
a fresh interpreter: this test process has imported and made far more than the server does.
"""
import subprocess
import sys
import tomllib

from tests.helpers import ROOT

PROBE = """
import gc
import pages._shared
import pandas, plotly.graph_objects, torch, transformers
in_view = {id(o) for o in gc.get_objects()}
print(gc.get_freeze_count(), len(in_view))
print(all(id(cls) not in in_view for cls in (pandas.DataFrame, plotly.graph_objects.Figure, torch.nn.Module,
                                             transformers.PreTrainedModel)))
"""


def test_imported_objects_are_frozen_when_the_shared_module_loads():
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", PROBE],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    counts, libraries_frozen = result.stdout.split("\n")[-3:-1]
    frozen, in_view = map(int, counts.split())
    assert frozen > 20 * in_view  # what a collection still walks is a small fraction
    assert libraries_frozen == "True"  # pandas too: the pages import it, and it is ~30,000 objects


def test_streamlit_leaves_garbage_to_pythons_own_collector():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False  # ~6 ms after every click, frozen objects or not
