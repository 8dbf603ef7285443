"""All of farm's settings, in one place.

Read from ``FARM_*`` environment variables, then an optional ``farm.toml`` (path in
``FARM_CONFIG``, default ``./farm.toml``), then the embedded local defaults below.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from farm.core.errors import UsageError
from farm.core.targets import hardware_classes

DEFAULT_BROKER_PORT = 6390  # not 6379, so a farm never collides with a system Redis


class FarmSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FARM_", extra="ignore")

    home: Path = Field(default=Path(".farm"), description="State folder: database, pids, logs, artifacts.")
    broker_url: str = f"redis://127.0.0.1:{DEFAULT_BROKER_PORT}/0"
    database_url: str = Field(default="", description="Empty means SQLite at <home>/farm.db.")
    artifact_root: str = Field(
        default="",
        description="A folder, or an object store URL (s3://bucket/prefix, needs farm[s3]); "
        "empty means <home>/artifacts.",
    )
    worker_concurrency: int = Field(default=1, ge=1)
    task_time_limit_s: int = Field(default=3600, ge=10, description="Hard limit for one task.")
    task_soft_time_limit_s: int = Field(default=0, ge=0, description="0 means 90% of the hard limit.")
    worker_soft_shutdown_s: float = Field(
        default=60.0,
        ge=0,
        description="On a cold shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT as containers "
        "and systemd units run workers) running tasks get this long to finish before they are handed "
        "back; a stop grace period must be longer.",
    )
    worker_max_tasks_per_child: int = Field(
        default=200, ge=0, description="Tasks a pool process runs before it is replaced; 0: no limit."
    )
    worker_max_memory_per_child_mb: int = Field(
        default=6144,
        ge=0,
        description="Resident memory past which a pool process is replaced after its task; 0: no limit.",
    )
    max_attempts: int = Field(default=3, ge=1, description="Deliveries of one task before it is failed.")
    worker_probe_timeout_s: float = Field(default=1.0, gt=0, description="How long status waits for pings.")
    convert_wait_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long `farm submit infer MODEL_FILE` waits for the model's conversion; then it "
        "stops, nothing submitted for scoring, and the conversion goes on.",
    )
    verify_samples: int = Field(default=16, ge=1, description="Synthetic verification samples (no --calib).")
    calib_samples: int = Field(default=32, ge=1, description="Most samples a quantizer calibrates on.")
    cpu_int8_activations: Literal["s8", "u8"] = Field(
        default="u8",
        description="How cpu INT8 stores activations: u8 (what ONNX Runtime's x86 kernels fuse) or s8; "
        "the same quantization either way.",
    )
    fpga_calibration: Literal["nonoverflow", "minmse"] = Field(
        default="minmse",
        description="fpga XINT8 power-of-two scales: minmse (Quark's error search) or nonoverflow (from the "
        "range: faster, and it clipped a trained digits CNN into losing 1.1 points where minmse lost 0.2).",
    )
    recipe_search_s: float = Field(
        default=120.0,
        ge=0,
        description="How long a reduced-precision variant that fails verification may go on trying its "
        "backend's other recipes; no recipe starts after that (0: the default recipe only).",
    )
    bench_window_s: float = Field(
        default=0.1, gt=0, description="One benchmark timing window (at least 3 runs)."
    )
    bench_seconds: float = Field(default=6.0, gt=0, description="Most timing per batch size.")
    bench_max_batch: int = Field(default=32, ge=1, description="Largest batch of the throughput sweep.")
    bench_max_rows: int = Field(
        default=4096,
        ge=1,
        description="Largest batch of a tabular model's sweep: its rows are cheap, and a tree "
        "ensemble's own predict overtakes ONNX Runtime only at batches of thousands.",
    )
    bench_lock: Path = Field(
        default=Path(""),
        description="Host-wide lock held while timing, so workers sharing a host never time each other; "
        "every worker of a host must name the same local file. Empty: <home>/run/benchmark.lock.",
    )
    flower_address: str = Field(default="127.0.0.1", description="Where `farm flower` and `farm up` serve.")
    flower_port: int = Field(default=5555, ge=1, le=65535)
    flower_user: str = Field(default="", description="Flower basic auth; required off loopback.")
    flower_password: SecretStr = Field(default=SecretStr(""))
    cache_dir: Path = Field(
        default=Path(""), description="Worker-local caches (TensorRT timing); empty: <home>/cache."
    )
    cost_per_hour: dict[str, float] = Field(
        default_factory=dict,
        description="What an hour of one machine of each hardware class costs, one variable per class: "
        "FARM_COST_PER_HOUR_GPU=2.50 (in farm.toml a [cost_per_hour] table). A class without a price "
        "shows no cost, and --objective cost refuses it.",
    )

    @field_validator("cost_per_hour")
    @classmethod
    def _known_classes_and_sane_prices(cls, prices: dict[str, float]) -> dict[str, float]:
        prices = {hardware.lower(): price for hardware, price in prices.items()}
        for hardware, price in prices.items():
            if hardware not in hardware_classes():
                known = ", ".join(hardware_classes())
                raise ValueError(f"{PRICE_PREFIX}{hardware.upper()}: not a hardware class (known: {known})")
            if not math.isfinite(price) or price < 0:
                raise ValueError(f"{PRICE_PREFIX}{hardware.upper()}: {price} is not a price")
        return prices

    @model_validator(mode="after")
    def _fill_derived_defaults(self) -> FarmSettings:
        self.home = self.home.expanduser().absolute()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'farm.db'}"
        if not self.artifact_root:
            self.artifact_root = str(self.home / "artifacts")
        if "://" not in self.artifact_root:  # a folder; a URL is used as given
            self.artifact_root = str(Path(self.artifact_root).expanduser().absolute())
        if self.bench_lock == Path(""):
            self.bench_lock = self.home / "run" / "benchmark.lock"
        if self.cache_dir == Path(""):
            self.cache_dir = self.home / "cache"
        if not self.task_soft_time_limit_s:
            self.task_soft_time_limit_s = int(self.task_time_limit_s * 0.9)
        return self

    @property
    def visibility_timeout_s(self) -> int:
        # Redis re-delivers an unacked message after this long: it must outlast the longest
        # task, or a slow conversion would run twice.
        return self.task_time_limit_s + 600

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("FARM_CONFIG", "farm.toml"))
        return (
            init_settings,
            env_settings,
            ClassPrices(settings_cls),
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )


PRICE_PREFIX = "FARM_COST_PER_HOUR_"


class ClassPrices(PydanticBaseSettingsSource):
    """``FARM_COST_PER_HOUR_<CLASS>`` variables gathered into ``cost_per_hour``: one variable per
    class reads better in a unit file or a compose file than a JSON map in one variable."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the variables itself

    def __call__(self) -> dict[str, Any]:
        prices = {
            name[len(PRICE_PREFIX) :].lower(): value
            for name, value in os.environ.items()
            if name.upper().startswith(PRICE_PREFIX) and value.strip()
        }
        return {"cost_per_hour": prices} if prices else {}


@lru_cache(maxsize=1)
def get_settings() -> FarmSettings:
    """The settings, or one line naming the setting that is wrong (never a validation traceback)."""
    try:
        return FarmSettings()
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        if not message.startswith("FARM_"):  # name the variable, as the user set it
            message = f"FARM_{'_'.join(str(part) for part in error['loc']).upper()}: {message}"
        raise UsageError(f"setting {message}") from exc


def redacted(url: str) -> str:
    """A service URL fit to print or log: its password replaced."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))
