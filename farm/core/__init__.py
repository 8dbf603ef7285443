"""The kernel: what every layer shares and nothing of ours above it.

Errors, settings, hardware targets as data, job options, the artifact store, model files and
their inputs, sample files and datasets, host facts, locks, waiting. Imports nothing from
``farm.client``, ``farm.cli``, ``db``, ``queues`` or ``workers`` (held by import-linter).
"""
