from __future__ import annotations

from pathlib import Path

import pytest

from farm.core.errors import UsageError
from farm.core.settings import DEFAULT_BROKER_PORT, FarmSettings, get_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("FARM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_local_and_under_the_state_folder(tmp_path: Path) -> None:
    settings = FarmSettings()
    home = tmp_path / ".farm"
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home / 'farm.db'}"
    assert settings.artifact_root == str(home / "artifacts")
    assert settings.broker_url == f"redis://127.0.0.1:{DEFAULT_BROKER_PORT}/0"
    assert settings.worker_concurrency == 1


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FARM_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("FARM_DATABASE_URL", "postgresql+psycopg://u@db/farm")
    monkeypatch.setenv("FARM_WORKER_CONCURRENCY", "4")
    monkeypatch.setenv("FARM_TASK_TIME_LIMIT_S", "100")
    settings = FarmSettings()
    assert settings.database_url == "postgresql+psycopg://u@db/farm"
    assert settings.artifact_root == str(tmp_path / "state" / "artifacts")
    assert settings.worker_concurrency == 4
    assert settings.task_soft_time_limit_s == 90
    assert settings.visibility_timeout_s > settings.task_time_limit_s


def test_toml_file_is_read_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "farm.toml").write_text('broker_url = "redis://broker:6379/2"\nworker_concurrency = 3\n')
    assert FarmSettings().broker_url == "redis://broker:6379/2"
    monkeypatch.setenv("FARM_WORKER_CONCURRENCY", "5")
    assert FarmSettings().worker_concurrency == 5


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_WORKER_CONCURRENCY", "0")
    with pytest.raises(ValueError, match="worker_concurrency"):
        FarmSettings()


def test_a_price_per_hour_is_one_variable_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FarmSettings().cost_per_hour == {}  # none set: no cost is shown
    monkeypatch.setenv("FARM_COST_PER_HOUR_GPU", "2.50")
    monkeypatch.setenv("FARM_COST_PER_HOUR_cpu", "0.1")
    assert FarmSettings().cost_per_hour == {"gpu": 2.50, "cpu": 0.1}


def test_a_price_in_farm_toml_is_a_table(tmp_path: Path) -> None:
    (tmp_path / "farm.toml").write_text("[cost_per_hour]\narm = 0.05\n")
    assert FarmSettings().cost_per_hour == {"arm": 0.05}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FARM_COST_PER_HOUR_TPU", "1", "FARM_COST_PER_HOUR_TPU: not a hardware class (known: arm, cpu"),
        ("FARM_COST_PER_HOUR_GPU", "-1", "FARM_COST_PER_HOUR_GPU: -1.0 is not a price"),
        ("FARM_COST_PER_HOUR_GPU", "nan", "FARM_COST_PER_HOUR_GPU: nan is not a price"),
        ("FARM_COST_PER_HOUR_GPU", "inf", "FARM_COST_PER_HOUR_GPU: inf is not a price"),
        ("FARM_COST_PER_HOUR_GPU", "$2", "FARM_COST_PER_HOUR_GPU: Input should be a valid number"),
        ("FARM_WORKER_CONCURRENCY", "many", "FARM_WORKER_CONCURRENCY: Input should be a valid integer"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(UsageError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(refused.value).startswith(f"setting {message}") and "\n" not in str(refused.value)
