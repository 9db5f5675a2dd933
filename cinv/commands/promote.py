"""``promote``: evaluate a registered version against ``@champion`` under one protocol and move
``@champion`` only on a clear gain (``cinv.promotion``)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from pydantic import Field

from cinv.config.base import Section
from cinv.config.options import DataOptions, EvalOptions, OptionalCorruption, ProbeOptions, RunOptions
from cinv.promotion import promote
from cinv.tracking.models import STUDENT_MODEL


class PromoteConfig(RunOptions):
    """Evaluate a registered version against @champion on one protocol; move @champion only on a clear gain."""

    name: str = Field(STUDENT_MODEL, min_length=1, description="registered model whose versions compete")
    version: int | None = Field(None, ge=1, description="candidate version; default: the latest")
    data: Annotated[DataOptions, Section()] = DataOptions()
    corruption: OptionalCorruption = Field(None, description="corruption of the protocol; default: the candidate's 'corruption' tag")
    probe: Annotated[ProbeOptions, Section("probe_")] = ProbeOptions()
    eval: Annotated[EvalOptions, Section("eval_")] = EvalOptions()
    margin_se: float = Field(2.0, ge=0, le=100, description="required gain in standard errors of the paired top-1 difference")


def run(cfg: PromoteConfig) -> pd.DataFrame:
    """Candidate vs @champion under one protocol; @champion moves only on a clear gain."""
    return promote(cfg)
