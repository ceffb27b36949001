"""Persistence: the local store, the central store, ingest and migrations.

Runs headless (CLI, sync worker, central ingest): never imports the UI.
"""
