"""Post-incident review (manual Phase 5) and its action items."""
from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from opsconsole.roles import is_operator

from ..choices import ActionItemStatus, ReviewStatus
from .incident import Incident


class PostIncidentReview(FSMModelMixin, models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="review")
    required = models.BooleanField(help_text="Required for P1/P2, optional for P3.")
    status = FSMField(default=ReviewStatus.DRAFT, choices=ReviewStatus.choices, protected=True)
    due_at = models.DateTimeField(null=True, blank=True, help_text="5 business days after resolution when required.")
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="Review meeting.")
    timeline_reconstruction = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    contributing_factors = models.TextField(blank=True)
    went_well = models.TextField(blank=True, help_text="Response effectiveness: what worked.")
    went_badly = models.TextField(blank=True, help_text="Response effectiveness: what did not.")
    improvements = models.TextField(blank=True, help_text="Improvement opportunities.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    def __str__(self) -> str:
        return f"Review of {self.incident.incident_id}"

    def complete(self) -> bool:
        """timeline reconstruction, root cause and response effectiveness filled in"""
        return all(x.strip() for x in (self.timeline_reconstruction, self.root_cause, self.went_well + self.went_badly))

    @transition(field=status, source=ReviewStatus.DRAFT, target=ReviewStatus.PUBLISHED, conditions=[complete],
                permission=lambda instance, user: is_operator(user))
    def publish(self):
        """Publish the post-incident report."""


class ActionItem(models.Model):
    review = models.ForeignKey(PostIncidentReview, on_delete=models.CASCADE, related_name="action_items")
    description = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_action_items")
    deadline = models.DateField()
    status = models.CharField(max_length=10, choices=ActionItemStatus.choices, default=ActionItemStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["status", "deadline", "id"]

    def __str__(self) -> str:
        return self.description[:80]
