from celery import shared_task

from .sweeper import stuck_batches_resend


@shared_task(name="ops.sweep_stuck_batches")
def sweep_stuck_batches() -> dict:
    from delivery.breakers import breakers_probe_due

    return {**stuck_batches_resend(), "breaker_probes": breakers_probe_due()}
