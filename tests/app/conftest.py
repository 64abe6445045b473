"""The page tests' fixtures: each test gets its own data folder (helpers.py has the AppTest helpers)."""
import tempfile

import pytest


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPLORER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EXPLORER_ALLOWED_FOLDERS", tempfile.gettempdir())  # where tests save tiny models
