"""The model worker: one long-lived process that runs the stages of the runs Dagster launches,
with the models and libraries it loaded once (server: :mod:`.server`; a run's side:
:mod:`.client`)."""
