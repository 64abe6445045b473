"""Why attention divides by sqrt(d): random vectors, the softmax, and the live model's scores (the Dot-product scaling page)."""
