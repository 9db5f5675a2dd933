"""Tracking: every ``cinv.*`` key (``schema``), runs and what they log (``runs``), logged and
registered models (``models``), the @champion rule (``promotion``) and loading a logged encoder
anywhere (``serving``)."""
