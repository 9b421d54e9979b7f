"""The on-call rota: weekly (or any whole-day) rotation of named engineers, with overrides."""
from django.conf import settings
from django.db import models
from django.db.models import F, Q


class OnCallRota(models.Model):
    """Who the escalation matrix's "On-call Engineer" is at any moment.

    Shifts start at `anchor` (the first handoff, e.g. a Monday 09:00) and last `shift_days`; member
    positions take turns in order. Handoffs keep their local wall-clock time across daylight saving.
    One rota is active at a time."""

    name = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    anchor = models.DateTimeField(help_text="Start of the first shift; every handoff is at this local time.")
    shift_days = models.PositiveSmallIntegerField(default=7, help_text="Length of one shift in days (7: weekly).")
    time_zone = models.CharField(max_length=64, blank=True, help_text="Zone of the handoff time; empty: TIME_ZONE.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-active", "name"]
        constraints = [
            models.UniqueConstraint(fields=["active"], condition=Q(active=True), name="one_active_oncall_rota"),
            models.CheckConstraint(condition=Q(shift_days__gte=1), name="oncall_shift_at_least_a_day"),
        ]

    def __str__(self) -> str:
        return self.name


class OnCallRotaMember(models.Model):
    rota = models.ForeignKey(OnCallRota, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oncall_memberships")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["rota", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rota", "position"], name="oncall_member_position_unique"),
            models.UniqueConstraint(fields=["rota", "user"], name="oncall_member_once_per_rota"),
        ]

    def __str__(self) -> str:
        return f"{self.rota}: {self.position}. {self.user}"


class OnCallOverride(models.Model):
    """`user` is on call from starts_at to ends_at instead of the rota's person (swaps, sickness, holidays).
    Where overrides overlap, the one created last wins."""

    rota = models.ForeignKey(OnCallRota, on_delete=models.CASCADE, related_name="overrides")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oncall_overrides")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        indexes = [models.Index(fields=["rota", "starts_at", "ends_at"])]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="oncall_override_ends_after_start")]

    def __str__(self) -> str:
        return f"{self.user} {self.starts_at:%Y-%m-%d %H:%M} → {self.ends_at:%Y-%m-%d %H:%M}"
