"""Training: the face cache, pairs, the loop, checkpoints, export and cards."""
