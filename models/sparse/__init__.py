"""Sparse attention patterns: masks, their cost, reachability, and a pattern enforced on a live model (the Sparse attention page)."""
