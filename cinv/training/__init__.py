"""Training: the run context (``context``), one optimisation loop for every method (``loop``: fit,
optimisers, schedules), resumable checkpoints (``checkpoint``) and several processes
(``distributed``: torchrun, DDP, gathered negatives)."""
