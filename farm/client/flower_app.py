"""The Celery app Flower loads (``celery --app farm.client.flower_app:app flower``): Flower names
an app by module attribute, so this module, and only it, makes one when imported, from the
settings `farm flower` hands its process through the environment."""

from __future__ import annotations

from farm.core.settings import get_settings
from queues.app import make_app

app = make_app(get_settings())
