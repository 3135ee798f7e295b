"""Operator tools: replay, dead-letter inspect and redrive.

They import the stream; the stream never imports them.
"""
