"""What a run's attention says: aggregates and rollout, head statistics, words, sentence pairs, matrix views, export (the Attention heads page)."""
