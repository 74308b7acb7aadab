"""Asset checks, evaluated inside the step of the asset they check (one step per stage instead
of two: each step costs a Celery task on the cluster and tens of milliseconds locally). Which
checks there are, and which block, is declared once, in ``tving_resources.stages.outcome.CHECKS``.

The blocking ones stop a video before bad data reaches the index; ``scene_rows_complete`` runs
on the rows before ``scene_index`` commits them. ``index_rows_match_scenes`` runs after the
commit, so it only reports. A failed blocking check is recorded in the catalog like a failed stage.
"""

import dagster as dg

from tving_resources.stages.outcome import CHECKS

CHECK_SPECS = tuple(
    dg.AssetCheckSpec(c.name, asset=c.asset, blocking=c.blocking, description=c.description) for c in CHECKS
)


def checks_of(asset: str) -> list[dg.AssetCheckSpec]:
    return [spec for spec in CHECK_SPECS if spec.asset_key.to_user_string() == asset]
