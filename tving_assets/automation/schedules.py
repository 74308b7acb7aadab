import dagster as dg

from tving_assets.jobs import refresh_search_indexes_job

nightly_search_index_refresh = dg.ScheduleDefinition(
    job=refresh_search_indexes_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Fold the day's new rows into the full-text/ANN indexes and compact the table.",
)
