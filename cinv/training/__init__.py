"""Training: the run context built from a command's config (``context``), one optimisation loop
for every method (``loop``: fit, optimisers, schedules) and resumable checkpoints
(``checkpoint``). Several processes (torchrun, DDP, gathered negatives) are ``cinv.distributed``."""
