"""The Celery app, its queues (one per hardware class) and how work is routed to them."""
