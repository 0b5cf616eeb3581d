"""Stage change requests and their reviews (SPEC 3.3, 3.4).

One table holds both kinds of request that go through review: a version's stage change, and
the move or removal of a protected alias. They share the workflow (request, review, apply,
cancel, supersede), the pending queue and the admin console.
"""

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from registry.errors import Invalid
from registry.models import (
    Membership,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    ModelVersion,
    RegisteredModel,
    Role,
    Stage,
)
from registry.models.catalog import token_org_id
from registry.models.history import history_records

# SPEC 3.3: the linear flow. Skips are counted among the first four; archived is last.
FLOW = (Stage.UNASSIGNED, Stage.DEVELOPMENT, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)
_STEPPED = FLOW[:4]


def stage_skips(from_stage: str, to_stage: str) -> bool:
    """Moving forward by more than one step among the first four; archived is never a skip."""
    if from_stage not in _STEPPED or to_stage not in _STEPPED:
        return False
    return _STEPPED.index(to_stage) - _STEPPED.index(from_stage) > 1


def stage_moves_back(from_stage: str, to_stage: str) -> bool:
    """Moving against the flow, including out of archived (which is its last step)."""
    return FLOW.index(to_stage) < FLOW.index(from_stage)


class RequestKind(models.TextChoices):
    STAGE = "stage", "Stage change"
    ALIAS_MOVE = "alias_move", "Alias set or move"
    ALIAS_REMOVE = "alias_remove", "Alias removal"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"
    SUPERSEDED = "superseded", "Superseded"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class StageChangeRequestQuerySet(models.QuerySet):
    def pending(self) -> "StageChangeRequestQuerySet":
        return self.filter(status=RequestStatus.PENDING)

    def for_model(self, model: RegisteredModel) -> "StageChangeRequestQuerySet":
        return self.filter(model=model)

    def for_version(self, version: ModelVersion) -> "StageChangeRequestQuerySet":
        return self.filter(version=version)

    def visible_to(self, user) -> "StageChangeRequestQuerySet":
        """Requests inherit their model's visibility (SPEC 3.1)."""
        return self.filter(model__in=RegisteredModel.objects.visible_to(user))

    def reviewable_by(self, user) -> "StageChangeRequestQuerySet":
        """The global queue: pending requests on models the user may approve, not their own
        and not yet reviewed by them. One query whatever the number of requests."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        queue = self.pending().exclude(requester=user)
        queue = queue.exclude(Exists(Review.objects.filter(request=OuterRef("pk"), reviewer=user)))
        bound = token_org_id(user)
        if bound is not None:
            queue = queue.filter(model__org_id=bound)
        if user.is_superuser:
            return queue
        memberships = Membership.objects.filter(user=user)
        admin_orgs = memberships.filter(role=Role.ADMIN).values("org_id")
        member_orgs = memberships.values("org_id")
        approve = {
            "permission__codename": ModelPermission.APPROVE,
            "content_object": OuterRef("model"),
        }
        user_grant = ModelUserPermission.objects.filter(user=user, **approve)
        team_grant = ModelGroupPermission.objects.filter(group__user=user, **approve)
        return queue.filter(
            Q(model__org__in=admin_orgs)
            | (Q(model__org__in=member_orgs) & (Exists(user_grant) | Exists(team_grant)))
        )

    def with_approvals(self) -> "StageChangeRequestQuerySet":
        """Annotate `approvals`, the number of approving reviews, as a subquery."""
        count = (
            Review.objects.filter(request=OuterRef("pk"), decision=Decision.APPROVE)
            .order_by()
            .values("request")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return self.annotate(approvals=Coalesce(Subquery(count), 0))

    def for_listing(self) -> "StageChangeRequestQuerySet":
        return self.select_related(
            "model__org", "version__branch", "requester", "alias_from"
        ).with_approvals()


class StageChangeRequest(models.Model):
    """A proposed change awaiting review: a version's stage, or a protected alias.

    For `alias_move`, `version` is where the alias is to point; for `alias_remove`, where it
    pointed when the removal was asked. `model` is the version's model, kept on the row so
    that the per-model queue and the one-pending-per-alias rule need no join.
    """

    kind = models.CharField(max_length=16, choices=RequestKind.choices, default=RequestKind.STAGE)
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="stage_requests"
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="stage_requests"
    )
    from_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    archive_existing = models.BooleanField(
        default=False, help_text="Archive the versions in production when this one lands."
    )
    skips = models.BooleanField(default=False, help_text="Skips a step of the linear flow.")
    moves_back = models.BooleanField(default=False, help_text="Moves back in the linear flow.")
    alias_name = models.CharField(max_length=128, blank=True)
    alias_from = models.ForeignKey(
        ModelVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where the alias pointed when the request was made (none: a new alias).",
    )
    comment = models.TextField(blank=True)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    required_approvals = models.PositiveSmallIntegerField(
        help_text="The number of approvals required when the request was made."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    history = history_records()

    objects = StageChangeRequestQuerySet.as_manager()

    class Meta:
        constraints = [
            # SPEC 3.4: at most one pending stage request per version, whoever races.
            models.UniqueConstraint(
                fields=["version"],
                condition=Q(status=RequestStatus.PENDING, kind=RequestKind.STAGE),
                name="request_one_pending_per_version",
            ),
            models.UniqueConstraint(
                fields=["model", "alias_name"],
                condition=Q(status=RequestStatus.PENDING) & ~Q(kind=RequestKind.STAGE),
                name="request_one_pending_per_alias",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["model", "status"]),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        where = f"{self.model.name}"
        if self.kind == RequestKind.STAGE:
            change = f"v{self.version.number} {self.from_stage} → {self.to_stage}"
        elif self.kind == RequestKind.ALIAS_MOVE:
            change = f"@{self.alias_name} → v{self.version.number}"
        else:
            change = f"@{self.alias_name} removed"
        return f"#{self.pk} {where} {change}"

    def save(self, *args, **kwargs):
        if self.pk is None or kwargs.get("force_insert"):  # an insert
            version_model = (
                ModelVersion._base_manager.filter(pk=self.version_id)
                .values_list("model_id", flat=True)
                .first()
            )
            if version_model != self.model_id:
                raise Invalid("a request's model is the model of its version")
        super().save(*args, **kwargs)

    @property
    def is_pending(self) -> bool:
        return self.status == RequestStatus.PENDING

    @property
    def is_alias(self) -> bool:
        return self.kind != RequestKind.STAGE


class Review(models.Model):
    """One reviewer's approve or reject of a request; each reviewer reviews once."""

    request = models.ForeignKey(
        StageChangeRequest, on_delete=models.CASCADE, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = history_records()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="review_once_per_reviewer")
        ]
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} of request #{self.request_id} by {self.reviewer}"
