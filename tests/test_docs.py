"""The README documents every setting: each field of ``Settings`` has its row."""

from __future__ import annotations

from pathlib import Path

from geodispatch.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [f"GEODISPATCH_{name.upper()}" for name in Settings.model_fields
               if f"`GEODISPATCH_{name.upper()}`" not in text]
    assert not missing, f"settings without a README row: {missing}"
