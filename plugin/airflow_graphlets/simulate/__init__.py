"""Synthetic continuous-training histories, written straight into an MLMD store."""
