"""The ``quality`` stage (after facts): the data-quality gate (``governance.gate``) on the
configured bronze and silver tables of the run's regions."""
from __future__ import annotations

import pyspark.sql.functions as F

from customer360.context import RunContext, StageResult
from customer360.governance.gate import gate


def run(ctx: RunContext) -> StageResult:
    """The ``quality`` stage: the configured bronze and silver tables of the run's regions."""
    result = StageResult("quality")
    frames, missing = {}, []
    for table in ctx.config.quality.checks:
        if not table.startswith(("bronze.", "silver.")):
            continue
        if ctx.lakehouse.exists(table):
            frames[table] = ctx.lakehouse.read(table).where(F.col("region").isin(*ctx.regions))
        else:
            missing.append(table)
    if missing:
        result.lines.append(f"not checked (no table yet): {', '.join(missing)}")
    gate(ctx, frames, result)
    return result
