"""Every ```python block of the README runs as written, each on its own (a reader copies one block).

The blocks run in a scratch folder whose data/demo_series/v1-seed0 is a tiny masked-LM series
standing in for the demo series (training the real one takes minutes), with the app's data
folder there too; blocks that load smollm2 use the session's converted copy.
"""
import re

import pytest

from tests.helpers import ROOT
from tests.tiny_models import save_tiny_mlm_series

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BLOCKS = {f"line {ROOT.joinpath('README.md').read_text()[:m.start()].count(chr(10)) + 1}": m[1]
          for m in BLOCK.finditer(ROOT.joinpath("README.md").read_text())}


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 8


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    save_tiny_mlm_series(folder / "data" / "demo_series" / "v1-seed0", steps=(20, 800))
    return folder


@pytest.mark.parametrize("where", list(BLOCKS))
def test_a_readme_block_runs(where, scratch, request, monkeypatch):
    code = BLOCKS[where]
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(scratch / "data"))
    monkeypatch.setattr("plotly.basedatatypes.BaseFigure.show", lambda figure, *args, **kwargs: None)
    if "smollm2" in code:  # its float32 copy, converted once per test session
        converted = request.getfixturevalue("smollm2").source
        (scratch / "data" / "converted").mkdir(exist_ok=True)
        link = scratch / "data" / "converted" / converted.rsplit("/", 1)[-1]
        if not link.exists():
            link.symlink_to(converted, target_is_directory=True)
    exec(compile(code, f"README.md ({where})", "exec"), {})
