"""Module Beta tasks (queue beta): thin, idempotent, ids only."""
from celery import shared_task

from .services import batch_transform, cache_refresh_run, transform_runs_prune


@shared_task(name="transform.transform_batch")
def transform_batch(batch_id: str) -> None:
    batch_transform(batch_id=batch_id)


@shared_task(name="transform.cache_refresh", soft_time_limit=3600, time_limit=3700)
def cache_refresh(refresh_id: int) -> None:
    """Runbook B.2: a full refresh may take long; progress is saved on the CacheRefresh row."""
    cache_refresh_run(refresh_id=refresh_id)


@shared_task(name="transform.prune_transform_runs", expires=3000)
def prune_transform_runs() -> None:
    transform_runs_prune()
