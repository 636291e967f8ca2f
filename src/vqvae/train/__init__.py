"""Training loop, checkpoints, run folders, distributed set-up and evaluation."""
