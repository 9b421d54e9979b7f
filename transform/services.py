"""Module Beta services: transform, score and route one batch."""
import logging
import time
from collections import Counter, defaultdict

from django.db import connection, transaction
from django.utils import timezone

from configuration.runtime import pipeline_runtime
from delivery.choices import FailureCategory
from delivery.models import BatchDelivery
from delivery.selectors import open_breaker_destinations
from delivery.services import dead_letters_insert
from ingestion.choices import BatchStage, RecordStatus
from ingestion.models import Batch, Record
from monitoring.metrics import LATENCY_BUCKETS, TRANSFORM_BUCKETS
from monitoring.services import counters_add, histogram_increments, labels_key
from opsconsole.bulk import bulk_update, load_json
from opsconsole.audit import audit_record
from opsconsole.dispatch import send_after_commit
from opsconsole.errors import ApplicationError

from .models import BetaControl

logger = logging.getLogger(__name__)



class BetaDraining(ApplicationError):
    """Module Beta is draining: ingestion must accept nothing new until it is resumed."""

    status_code = 503


def beta_intake_check() -> None:
    """Raise BetaDraining while Module Beta is draining (ingestion calls this before accepting records)."""
    if BetaControl.objects.filter(name="beta", draining=True).exists():
        raise BetaDraining("Module Beta is draining (POST /api/beta/admin/drain): no new records are accepted "
                           "until it is resumed (POST /api/beta/admin/resume).")


def _beta_control_set(*, actor, draining: bool, reason: str) -> BetaControl:
    name = actor.get_username() if getattr(actor, "is_authenticated", False) else str(actor or "system")
    with transaction.atomic():
        control, _ = BetaControl.objects.select_for_update().get_or_create(name="beta")
        was = control.draining
        control.draining = draining
        control.changed_at = timezone.now()
        control.changed_by = name[:150]
        control.reason = reason
        control.save()
        audit_record(actor=actor, action="beta.drain" if draining else "beta.resume", target="module:beta",
                     reason=reason, details={"was_draining": was})
    return control


def beta_drain(*, actor, reason: str = "") -> BetaControl:
    """Stop intake: ingestion refuses new records (503) while Beta finishes the records it already has."""
    return _beta_control_set(actor=actor, draining=True, reason=reason)


def beta_resume(*, actor, reason: str = "") -> BetaControl:
    """Open intake again after a drain."""
    return _beta_control_set(actor=actor, draining=False, reason=reason)


def _validated_records(batch_id) -> list[tuple]:
    pk = Record._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT id, payload FROM "{Record._meta.db_table}" WHERE batch_id = %s AND status = %s',
            [pk.get_db_prep_value(batch_id, connection), RecordStatus.VALIDATED],
        )
        return [(pk.to_python(rid), load_json(payload)) for rid, payload in cursor.fetchall()]


def batch_transform(*, batch_id: str) -> bool:
    """Transform, score and route the records of a validated batch; returns False if there was
    nothing to do (already transformed, or gone), which makes a duplicate message harmless."""
    runtime = pipeline_runtime()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(id=batch_id, stage=BatchStage.VALIDATED).first()
        if batch is None:
            return False
        now = timezone.now()
        started = time.perf_counter()
        updates, dead = [], []
        routes: dict[str, list[str]] = defaultdict(list)
        counts: Counter = Counter()
        source_label = labels_key({"source": batch.source_id})
        unavailable = open_breaker_destinations()
        for rid, payload in _validated_records(batch.id):
            outcome = runtime.rules.apply(payload)
            if outcome.failed_rule:
                updates.append((RecordStatus.DLQ, outcome.data, None, outcome.reason, now, rid))
                dead.append((rid, batch.id, batch.source_id, "", FailureCategory.TRANSFORM, outcome.reason, None, 1,
                             now, now, False))
                continue
            counts[("beta_records_transformed_total", source_label)] += 1
            score = runtime.scorer.score(outcome.data, now)
            if score.level == "reject":
                reason = f"quality score {score.total} below reject threshold {runtime.scorer.reject}"
                updates.append((RecordStatus.REJECTED, outcome.data, score.total, reason, now, rid))
                counts[("beta_records_rejected_total", source_label)] += 1
                continue
            plan = runtime.router.plan(batch.source_id, score.total, outcome.data, unavailable)
            for destination_id, refusal in plan.refused:
                dead.append((rid, batch.id, batch.source_id, destination_id, FailureCategory.AUTHORIZATION,
                             f"route refused: {refusal}", None, 0, now, now, False))
                counts[("gamma_routes_refused_total",
                        labels_key({"destination": destination_id, "source": batch.source_id}))] += 1
            if not plan.destinations:
                if plan.refused:
                    updates.append((RecordStatus.DLQ, outcome.data, score.total, "every route refused", now, rid))
                else:
                    updates.append((RecordStatus.FILTERED, outcome.data, score.total, "no routing rule matched", now, rid))
                    counts[("beta_records_filtered_total", source_label)] += 1
                continue
            updates.append((RecordStatus.ROUTED, outcome.data, score.total, "", None, rid))
            for destination_id in plan.destinations:
                routes[destination_id].append(str(rid))
        bulk_update(Record, ("status", "data", "quality_score", "reason", "finished_at"), updates)
        if dead:
            dead_letters_insert(dead)
        BatchDelivery.objects.bulk_create(
            BatchDelivery(batch=batch, destination_id=d, record_ids=ids) for d, ids in sorted(routes.items())
        )
        counts.update(histogram_increments("beta_transform_duration_seconds", {"source": batch.source_id},
                                           TRANSFORM_BUCKETS, [time.perf_counter() - started]))
        counts.update(histogram_increments("module_latency_seconds", {"module": "alpha"}, LATENCY_BUCKETS,
                                           [(now - batch.created_at).total_seconds()]))
        batch.stage = BatchStage.TRANSFORMED if routes else BatchStage.DONE
        batch.save(update_fields=["stage", "updated_at"])
        counters_add(counts)
        for destination_id in sorted(routes):
            send_after_commit("delivery.deliver_batch", [str(batch.id), destination_id])
    return True
