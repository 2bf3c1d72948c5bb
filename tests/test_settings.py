from __future__ import annotations

from pathlib import Path

import pytest

from pie.settings import Settings, configuration_markdown

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_configuration_doc_is_generated_from_settings() -> None:
    assert DOC.read_text() == configuration_markdown(), "run `make docs`"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for name in Settings.model_fields:
        assert f"`PIE_{name.upper()}`" in text


def test_environment_is_read_with_the_pie_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIE_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("PIE_DATABASE_URL", "postgresql://u@h:5432/d")
    settings = Settings()
    assert settings.max_body_bytes == 2048
    assert settings.effective_database_url == "postgresql+asyncpg://u@h:5432/d"


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'pie.db'}"


def test_jwks_mode_needs_url_and_issuer() -> None:
    with pytest.raises(ValueError, match="PIE_JWKS_URL"):
        Settings(auth_mode="jwks")


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        Settings(not_a_setting=1)  # type: ignore[call-arg]
