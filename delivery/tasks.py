from celery import shared_task

from .services import batch_deliver


@shared_task(name="delivery.deliver_batch")
def deliver_batch(batch_id: str, destination_id: str) -> None:
    batch_deliver(batch_id=batch_id, destination_id=destination_id)


@shared_task(name="delivery.dlq_replay_run")
def dlq_replay_run(run_id: int) -> None:
    from .operations import dlq_replay_run as run

    run(run_id)


@shared_task(name="delivery.dlq_purge_run")
def dlq_purge_run(run_id: int) -> None:
    from .operations import dlq_purge_run as run

    run(run_id)


@shared_task(name="delivery.dlq_export_run")
def dlq_export_run(run_id: int) -> None:
    from .operations import dlq_export_run as run

    run(run_id)
