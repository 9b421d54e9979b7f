"""Re-sending work the broker may have lost (a killed worker, a restarted broker, the file-system
transport that drops a fetched message). The database says what is unfinished; this reads it."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from delivery.choices import DeliveryStatus
from delivery.models import BatchDelivery
from ingestion.choices import BatchStage
from ingestion.models import Batch

from .dispatch import send_task_now

logger = logging.getLogger(__name__)


def stuck_batches_resend(*, older_than_seconds: int | None = None, limit: int = 1000) -> dict[str, int]:
    """Re-send the stage task of batches and deliveries that have not moved for a while.

    Stage tasks are idempotent, so a re-send that races the original does nothing twice."""
    age = settings.PIPELINE_STUCK_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    stuck = list(Batch.objects.filter(stage=BatchStage.VALIDATED, updated_at__lt=cutoff).values_list("id", flat=True)[:limit])
    for batch_id in stuck:
        send_task_now("transform.transform_batch", [str(batch_id)])
    if stuck:
        # Touch them so the next sweep waits another period before re-sending again.
        Batch.objects.filter(id__in=stuck).update(updated_at=timezone.now(), sends=F("sends") + 1)
    deliveries = list(
        BatchDelivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=cutoff)
        .values_list("id", "batch_id", "destination_id", "next_attempt_at")[:limit]
    )
    now = timezone.now()
    resent = 0
    for _, batch_id, destination_id, next_attempt_at in deliveries:
        if next_attempt_at and next_attempt_at > now:
            continue  # its retry is scheduled and not yet due
        send_task_now("delivery.deliver_batch", [str(batch_id), destination_id])
        resent += 1
    if deliveries:
        BatchDelivery.objects.filter(id__in=[d[0] for d in deliveries]).update(updated_at=timezone.now())
    if stuck or resent:
        logger.warning("re-sent %d batches and %d deliveries", len(stuck), resent, extra={"component": "sweeper"})
    return {"batches": len(stuck), "deliveries": resent}
