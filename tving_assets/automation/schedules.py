import dagster as dg

from tving_assets.jobs import refresh_search_indexes_job

nightly_search_index_refresh = dg.ScheduleDefinition(
    job=refresh_search_indexes_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    run_config={"ops": {"people": {"config": {"full": True}}}},
    description="Fold the day's rows into the full-text/ANN indexes, compact the table, group every face afresh.",
)
