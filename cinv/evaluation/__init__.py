"""Evaluation: accuracy over corruption draws (``metrics``), a command's evaluation protocol
(``protocol``), adversarial robustness and smoothing (``robustness``), tables whose ± says what it
is (``tables``) and the report built from a store (``report``)."""
