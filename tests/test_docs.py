"""The README documents every setting the code reads."""

from __future__ import annotations

from conftest import REPO_ROOT

from salespulse.config import Settings


def test_readme_configuration_table_lists_every_setting():
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`SALESPULSE_{name.upper()}`" not in readme]
    assert missing == []
