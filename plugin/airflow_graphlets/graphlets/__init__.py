"""Model graphlets: extraction from any MLMD store (two readers) and the paper's analyses."""
