from celery import shared_task

from .services import batch_deliver


@shared_task(name="delivery.deliver_batch")
def deliver_batch(batch_id: str, destination_id: str) -> None:
    batch_deliver(batch_id=batch_id, destination_id=destination_id)
