"""Two runs compared: alignment on common words, per-head divergence, head matching, a checkpoint series' heads over training (the Compare page)."""
