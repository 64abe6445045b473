"""Adaptive attention span: the soft mask, a character LM that learns a span per head, saved runs (the Adaptive attention span page)."""
