"""The Celery app the cluster deployment's workers run: Dagster's own step task (dagster_celery),
with the broker and result backend from TVING_CELERY_BROKER.

    celery -A tving_assets.celery_app worker -Q gpu -c 1    # a model-heavy worker (one per GPU)
    celery -A tving_assets.celery_app worker -Q cpu         # probe, scenes, keyframes, rows, commit

A worker process runs step after step, so the models it loaded stay loaded (their process-wide
cache): each worker loads each model once.
"""

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from tving_resources.config import celery_broker

broker = celery_broker()
app = make_app({"broker": broker, "backend": broker})
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=True, broker_connection_retry_on_startup=True)
execute_plan = create_task(app)
