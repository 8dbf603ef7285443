"""Worker side: Celery task bodies, conversion backends, runtimes and hardware detection."""
