"""Metrics, health and logs. Imported by every layer above; imports nothing of the worker."""
