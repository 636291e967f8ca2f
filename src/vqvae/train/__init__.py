"""Training: the shared loop, checkpoints, distributed set-up, and the step functions of
each model (``vqvae.py``) and of the priors (``prior.py``). Nothing else."""
