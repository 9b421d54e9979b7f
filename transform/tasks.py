from celery import shared_task

from .services import batch_transform


@shared_task(name="transform.transform_batch")
def transform_batch(batch_id: str) -> None:
    batch_transform(batch_id=batch_id)
