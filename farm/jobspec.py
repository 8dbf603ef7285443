"""What a conversion job asks for beyond the model: stored with the job, read by the worker."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConvertOptions:
    precisions: list[str] = field(default_factory=list)  # empty: every precision each backend builds
    calib_key: str | None = None  # artifact key of the --calib file
    calib_sha256: str | None = None
    atol: float | None = None  # tolerance overrides; None keeps the precision's default
    rtol: float | None = None
    min_top1: float | None = None
    force: bool = False  # rebuild even when a cached variant matches

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConvertOptions:
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        return cls(**known)

    def tolerance_overrides(self) -> dict[str, float | None]:
        return {"atol": self.atol, "rtol": self.rtol, "min_top1": self.min_top1}
