"""Tracking, plain MLflow below training: every ``cinv.*`` key (``schema``), the store itself
(``store``: where it is, whether it can be used, retries), runs and what they log (``runs``),
logged and registered models (``models``), a run's owner and write-once claims (``lease``),
continuing a stopped run (``resume``) and loading a logged encoder anywhere (``serving``). The
@champion rule, the promotion and its compare-and-set are ``cinv.promotion``."""
