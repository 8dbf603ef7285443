"""What every command shares: the settings (read once from FARM_*, farm.toml and the defaults)
and the Celery app made from them, on first use."""

from __future__ import annotations

from functools import cache

from farm.core.settings import get_settings
from queues.app import FarmCelery, make_app


@cache
def celery_app() -> FarmCelery:
    return make_app(get_settings())
