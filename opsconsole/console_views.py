"""Pages of the operators' web console: thin views over the apps' selectors."""
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from configuration.selectors import config_version_list
from configuration.services import ConfigInvalid, config_reload
from delivery import selectors as delivery_selectors
from ingestion import selectors as ingestion_selectors
from ingestion.choices import RecordStatus
from ingestion.filtersets import BatchFilterSet, ValidationFailureFilterSet
from monitoring.selectors import pipeline_overview, pipeline_status
from transform.selectors import transform_rule_list

from .console import Column, ConsoleListView, ConsolePageMixin, Field, OperatorRequiredMixin, ReaderRequiredMixin, Table
from .errors import ApplicationError
from .filtersets import AuditEntryFilterSet
from .selectors import audit_entry_list


def source_url(row) -> str | None:
    return reverse("console:source-detail", args=[row.source_id]) if row.source_id else None


def batch_url(row) -> str | None:
    batch_id = getattr(row, "batch_id", None)
    return reverse("console:batch-detail", args=[batch_id]) if batch_id else None


def _status_columns(prefix: str) -> list[Column]:
    """One number column per record status, reading `<prefix>.<status>`."""
    return [Column(status.value.upper() if status == RecordStatus.DLQ else status.value.capitalize(),
                   f"{prefix}.{status.value}", "number") for status in RecordStatus]


def _counts_table(counts: dict[str, int], title: str = "Records by status") -> Table:
    rows = [{"status": status.value, "label": status.label, "count": counts.get(status.value, 0)} for status in RecordStatus]
    return Table(title=title, rows=rows, columns=[
        Column("Status", "status", "status"), Column("Meaning", "label"), Column("Records", "count", "number"),
    ])


VALIDATION_FAILURE_COLUMNS = [
    Column("When", "created_at", "time"),
    Column("Source", "source_id", link=source_url),
    Column("Batch", "batch_id", "short", link=batch_url),
    Column("Error code", "error_code", "status"),
    Column("Field", "field", "code"),
    Column("Message", "message"),
    Column("Raw", "raw", "code"),
]

BATCH_COLUMNS = [
    Column("Batch", "id", "short", link=lambda b: reverse("console:batch-detail", args=[b.id])),
    Column("Source", "source_id", link=source_url),
    Column("Stage", "stage", "status"),
    Column("Received", "received", "number"),
    Column("Accepted", "accepted", "number"),
    Column("Rejected", "rejected", "number"),
    Column("Origin", "origin", "code"),
    Column("Created", "created_at", "time"),
    Column("Updated", "updated_at", "time"),
    Column("Sends", "sends", "number"),
]

DELIVERY_COLUMNS = [
    Column("Destination", "destination_id"),
    Column("Status", "status", "status"),
    Column("Records", "record_count", "number"),
    Column("Attempts", "attempts", "number"),
    Column("Next attempt", "next_attempt_at", "time"),
    Column("Last error", "last_error", "code"),
    Column("Delivered", "delivered_at", "time"),
]


class OverviewView(ConsolePageMixin, TemplateView):
    template_name = "console/overview.html"
    title = "Overview"
    nav = "overview"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["overview"] = pipeline_overview()
        context["pipeline_status"] = context["overview"]["status"]
        return context


class OverviewPanelView(ReaderRequiredMixin, TemplateView):
    """The overview's live panel alone; htmx fetches it every 5 seconds."""

    template_name = "console/_overview_panel.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "overview": pipeline_overview()}


class StatusBadgeView(ReaderRequiredMixin, TemplateView):
    """The top bar's pipeline status badge alone; htmx refreshes it every 10 seconds."""

    template_name = "console/_status_badge.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "pipeline_status": pipeline_status()}


class SourceListView(ConsoleListView):
    title = "Sources (Alpha)"
    nav = "sources"
    paginate_by = None
    empty = "No sources configured."
    columns = [
        Column("Source", "source_id", link=source_url),
        Column("Type", "get_source_type_display"),
        Column("Enabled", "enabled", "bool"),
        Column("Config", "config_version", "number"),
        Column("Status", "alpha.status", "status"),
        Column("Health", "alpha.health", "status"),
        Column("Last poll", "alpha.last_poll.at", "time"),
        Column("Last error", "alpha.last_error.message", "code"),
        Column("Buffered", "alpha.buffered", "number"),
        *_status_columns("counts"),
        Column("Last batch", "last_batch_at", "time"),
    ]

    def get_base_queryset(self):
        sources = ingestion_selectors.source_list()
        statuses = {s["source_id"]: s for s in ingestion_selectors.source_statuses()}
        for source in sources:
            source.alpha = statuses.get(source.source_id, {})
        return sources


class SourceDetailView(ConsolePageMixin, TemplateView):
    template_name = "ingestion/source_detail.html"  # the generic detail page plus Alpha's action buttons
    nav = "sources"

    def get_context_data(self, **kwargs):
        detail = ingestion_selectors.source_detail(source_id=self.kwargs["source_id"])
        if detail is None:
            raise Http404("Unknown source.")
        source = detail["source"]
        self.title = f"Source {source.source_id}"
        failures_url = reverse("console:validation-failures") + f"?source_id={source.source_id}"
        alpha = ingestion_selectors.source_status(source_id=source.source_id)
        last_error = alpha["last_error"] or {}
        return {
            **super().get_context_data(**kwargs),
            "alpha": alpha,
            "fields": [
                Field("Source", source.source_id),
                Field("Type", source.get_source_type_display()),
                Field("Enabled", source.enabled, "bool"),
                Field("Status", alpha["status"], "status"),
                Field("Health", alpha["health"], "status"),
                Field("Connection", {1: "connected", 0: "failed"}.get(alpha["connection_status"]), "status"),
                Field("Failures in a row", alpha["consecutive_failures"], "number"),
                Field("Last poll", (alpha["last_poll"] or {}).get("at"), "time"),
                Field("Last success", alpha["last_success_at"], "time"),
                Field("Last error", f"{last_error.get('kind')}: {last_error.get('message')}" if last_error else None, "code"),
                Field("Records, last minute", alpha["records_last_minute"], "number"),
                Field("Records, last hour", alpha["records_last_hour"], "number"),
                Field("Buffered (awaiting Beta)", alpha["buffered"], "number"),
                Field("Paused by", f"{alpha['paused_by']}: {alpha['pause_reason']}" if alpha["paused"] else None),
                Field("Cursor", alpha["cursor"], "json"),
                Field("Last test", alpha["last_test"], "json"),
                Field("Config version", source.config_version, "number"),
                Field("Specification", source.spec, "json"),
            ],
            "tables": [
                _counts_table(detail["counts"]),
                Table(title="Recent poll and connection errors",
                      rows=list(ingestion_selectors.source_errors(source_id=source.source_id)[:20]),
                      empty="No poll or connection errors.", columns=[
                          Column("When", "created_at", "time"), Column("Kind", "kind", "status"),
                          Column("Stage", "stage"), Column("HTTP", "status_code", "number"),
                          Column("Message", "message", "code")]),
                Table(title="Recent batches", rows=detail["batches"], columns=BATCH_COLUMNS[:1] + BATCH_COLUMNS[2:],
                      empty="No batches yet.", more_url=reverse("console:batches") + f"?source_id={source.source_id}"),
                Table(title="Recent validation failures", rows=detail["failures"],
                      columns=[c for c in VALIDATION_FAILURE_COLUMNS if c.key != "source_id"],
                      empty="No validation failures.", more_url=failures_url),
            ],
        }


class ValidationFailureListView(ConsoleListView):
    title = "Validation failures"
    nav = "validation-failures"
    filterset_class = ValidationFailureFilterSet
    columns = VALIDATION_FAILURE_COLUMNS
    empty = "No validation failures."

    def get_base_queryset(self):
        return ingestion_selectors.validation_failure_list()

    def get_extra_tables(self) -> list[Table]:
        return [Table(title="By source and error code, last hour", empty="No validation failures in the last hour.",
                      rows=ingestion_selectors.validation_failures_summary(hours=1), columns=[
                          Column("Source", "source_id", link=lambda r: reverse("console:source-detail", args=[r["source_id"]])),
                          Column("Error code", "error_code", "status"),
                          Column("Failures", "count", "number"), Column("Last", "last_at", "time")])]


class BatchListView(ConsoleListView):
    title = "Batches"
    nav = "batches"
    filterset_class = BatchFilterSet
    columns = BATCH_COLUMNS
    empty = "No batches."

    def get_base_queryset(self):
        return ingestion_selectors.batch_list()


class BatchDetailView(ConsolePageMixin, TemplateView):
    template_name = "console/detail.html"
    nav = "batches"

    def get_context_data(self, **kwargs):
        detail = ingestion_selectors.batch_detail(batch_id=self.kwargs["batch_id"])
        if detail is None:
            raise Http404("Unknown batch.")
        batch = detail["batch"]
        self.title = f"Batch {batch.id}"
        return {
            **super().get_context_data(**kwargs),
            "fields": [
                Field("Batch", batch.id),
                Field("Source", batch.source_id, link=reverse("console:source-detail", args=[batch.source_id])),
                Field("Stage", batch.stage, "status"),
                Field("Received", batch.received, "number"),
                Field("Accepted", batch.accepted, "number"),
                Field("Rejected", batch.rejected, "number"),
                Field("Origin", batch.origin, "code"),
                Field("Config version", batch.config_version, "number"),
                Field("Created", batch.created_at, "time"),
                Field("Updated", batch.updated_at, "time"),
                Field("Stage task sends", batch.sends, "number"),
            ],
            "tables": [
                _counts_table(detail["counts"]),
                Table(title="Deliveries", rows=delivery_selectors.batch_delivery_list(batch_id=batch.id),
                      columns=DELIVERY_COLUMNS, empty="No deliveries (not routed yet, or nothing to deliver)."),
                Table(title="Validation failures", rows=detail["failures"],
                      columns=[c for c in VALIDATION_FAILURE_COLUMNS if c.key not in ("source_id", "batch_id")],
                      empty="No validation failures."),
            ],
        }


class TransformRuleListView(ConsoleListView):
    title = "Transformation rules (Beta)"
    nav = "rules"
    paginate_by = None
    empty = "No transformation rules configured."
    columns = [
        Column("Priority", "priority", "number"),
        Column("Rule", "rule_id"),
        Column("Name", "name"),
        Column("Description", "description"),
        Column("Enabled", "enabled", "bool"),
        Column("Config", "config_version", "number"),
        Column("Specification", "spec", "json"),
    ]

    def get_base_queryset(self):
        return transform_rule_list()


class DestinationListView(ConsoleListView):
    title = "Destinations & deliveries (Gamma)"
    nav = "destinations"
    paginate_by = None
    empty = "No destinations configured."
    columns = [
        Column("Destination", "destination_id", link=lambda d: reverse("console:destination-detail", args=[d.destination_id])),
        Column("Type", "destination_type"),
        Column("Enabled", "enabled", "bool"),
        Column("Config", "config_version", "number"),
        Column("Pending", "deliveries.pending", "number"),
        Column("Delivered", "deliveries.delivered", "number"),
        Column("DLQ", "deliveries.dlq", "number"),
        Column("Last error", "last_error", "code"),
        Column("Last error at", "last_error_at", "time"),
        Column("Specification", "spec", "json"),
    ]
    intro = "Delivery counts are batch deliveries (one batch to one destination)."

    def get_extra_tables(self) -> list[Table]:
        return [Table(title="Routing rules", rows=delivery_selectors.routing_rule_list(), empty="No routing rules configured.",
                      columns=[
                          Column("Priority", "priority", "number"),
                          Column("Rule", "rule_id"),
                          Column("Destination", "destination_id"),
                          Column("Enabled", "enabled", "bool"),
                          Column("Config", "config_version", "number"),
                          Column("Specification", "spec", "json"),
                      ])]

    def get_base_queryset(self):
        return delivery_selectors.destination_list()


class ReconciliationView(ConsoleListView):
    title = "Reconciliation"
    nav = "reconciliation"
    paginate_by = None
    empty = "No records ingested yet."
    intro = "ingested = rejected + filtered + delivered + held + dlq + in flight, per source and in total."
    columns = [
        Column("Source", "source"),
        Column("Ingested", "ingested", "number"),
        Column("Rejected", "rejected", "number"),
        Column("Filtered", "filtered", "number"),
        Column("Delivered", "delivered", "number"),
        Column("Held", "held", "number"),
        Column("DLQ", "dlq", "number"),
        Column("In flight", "in_flight", "number"),
        Column("Accounted", "accounted", "number"),
        Column("Balanced", "balanced", "check"),
    ]

    def get_base_queryset(self):
        report = ingestion_selectors.reconciliation()
        rows = [{"source": source_id, **counts} for source_id, counts in report["sources"].items()]
        if rows:
            rows.append({"source": "Total", **report["total"], "total": True})
        return rows

    def get_row_class(self, row) -> str:
        return " ".join(c for c in ("unbalanced" if not row["balanced"] else "", "total" if row.get("total") else "") if c)


class ConfigVersionListView(ConsoleListView):
    template_name = "console/config_versions.html"
    title = "Configuration versions"
    nav = "config"
    empty = "No configuration applied yet."
    columns = [
        Column("Version", "number", "number"),
        Column("Active", "is_active", "bool"),
        Column("SHA-256", "sha256", "code"),
        Column("Applied", "applied_at", "time"),
        Column("Applied by", "applied_by"),
        Column("Comment", "comment"),
        Column("Files", "file_count", "number"),
    ]

    def get_base_queryset(self):
        return config_version_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        for version in context["object_list"]:
            version.file_count = len(version.files or {})
        return context


class AuditLogView(ConsoleListView):
    title = "Audit log"
    nav = "audit"
    filterset_class = AuditEntryFilterSet
    empty = "No audit entries."
    columns = [
        Column("When", "at", "time"),
        Column("Actor", "actor_name"),
        Column("Action", "action", "code"),
        Column("Target", "target", "code"),
        Column("Reason", "reason"),
        Column("Details", "details", "json"),
    ]

    def get_base_queryset(self):
        return audit_entry_list()


class ConfigReloadView(OperatorRequiredMixin, View):
    """POST: validate PIPELINE_CONFIG_DIR and apply it all or nothing (the service audits it)."""

    http_method_names = ["post"]

    def post(self, request):
        try:
            version = config_reload(actor=request.user, comment=request.POST.get("comment", "").strip())
        except ConfigInvalid as exc:
            lines = [f"{e['file']}: {e['field'] or '(document)'}: {e['reason']}" for e in exc.errors]
            messages.error(request, "\n".join([str(exc), *lines]))
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            if version.changed:
                messages.success(request, f"Applied configuration version {version.number}.")
            else:
                messages.info(request, f"Configuration unchanged; version {version.number} stays active.")
        return HttpResponseRedirect(reverse("console:config-versions"))
