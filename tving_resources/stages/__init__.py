"""The stages of indexing one video, Dagster-free: each takes a
:class:`~tving_resources.stages.outcome.StageRequest` and answers a
:class:`~tving_resources.stages.outcome.StageOutcome` (the code location's assets turn it into a
materialization). The same functions run in a run's own process or in the model worker
(:mod:`tving_resources.worker`), which keeps the models and libraries loaded across runs."""
