"""The client: submitting conversions and scoring jobs, reading them back, reports, the local
farm (`farm up`) and the fleet's view. Imports the kernel, ``db`` and ``queues``; never
``workers`` (held by import-linter)."""
