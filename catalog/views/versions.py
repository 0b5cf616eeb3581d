"""The version page and its forms: stage request, lock level, free metadata, comments,
artifact download (its aliases: catalog/views/aliases.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals.forms import ReviewForm
from approvals.models import (
    FLOW,
    RequestKind,
    Review,
    StageChangeRequest,
    stage_moves_back,
    stage_skips,
)
from approvals.services import request_create
from catalog.errors import domain_errors
from catalog.forms import (
    CommentForm,
    KeyValueFormSet,
    LockForm,
    MetadataForm,
    StageRequestForm,
    first_error,
    formset_error,
    initial_rows,
)
from catalog.views import version_url
from catalog.views.aliases import aliases_context, mark_review_controls
from catalog.views.flags import flags_context
from catalog.views.lineage import lineage_context
from notifications.services import reviewers_of
from registry.downloads import download_response
from registry.errors import Invalid, NotFound
from registry.models import (
    ActivityEvent,
    Artifact,
    Comment,
    LockLevel,
    ModelVersion,
    Stage,
)
from registry.permissions import get_version_for_user, model_access
from registry.services.comments import comment_add
from registry.services.versions import version_set_lock_level, version_update


def _stage_options(version: ModelVersion) -> list[dict]:
    """Stages to offer (display only: request_create decides). Production off a protected
    branch is shown with the reason instead of a form (SPEC 3.6)."""
    return [
        {
            "stage": stage,
            "label": stage.label,
            "skips": stage_skips(version.stage, stage),
            "moves_back": stage_moves_back(version.stage, stage),
            "unprotected": stage == Stage.PRODUCTION and not version.branch.protected,
        }
        for stage in FLOW
        if stage != version.stage
    ]


def _reviewers_context(version: ModelVersion, requester) -> dict:
    """Who a request would ask (the reviewers the e-mails go to and whose queue shows it),
    and how many approvals it needs."""
    model = version.model
    reviewers = reviewers_of(model, exclude_id=requester.pk)
    required = model.required_approvals or model.org.required_approvals
    return {"reviewers": reviewers, "required_approvals": required}


def _lock_options(version: ModelVersion, admin: bool) -> list[tuple[str, str]]:
    """Levels to offer (display only: version_set_lock_level decides)."""
    rank = LockLevel.rank(version.lock_level)
    if version.is_closed and version.model.org.closed_is_final:
        admin = False  # nothing lowers a closed version in compliance mode
    return [
        (level.value, level.label)
        for level in LockLevel
        if LockLevel.rank(level) > rank or (admin and LockLevel.rank(level) < rank)
    ]


def _pending(version: ModelVersion) -> StageChangeRequest | None:
    """The version's pending stage request (alias requests are the aliases panel's)."""
    reviews = Prefetch("reviews", queryset=Review.objects.select_related("reviewer"))
    return (
        StageChangeRequest.objects.for_version(version)
        .pending()
        .filter(kind=RequestKind.STAGE)
        .for_listing()
        .prefetch_related(reviews)
        .first()
    )


@login_required
@domain_errors
def version_detail(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number)
    access = model_access(request.user, version.model)
    pending = _pending(version)
    if pending is not None:
        mark_review_controls(pending, access, request.user)
    requested = request.GET.get("request")
    chosen = next((o for o in _stage_options(version) if o["stage"] == requested), None)
    if not (access.write and pending is None):
        chosen = None
    context = {
        "version": version,
        "model": version.model,
        "access": access,
        "can_write": access.write,
        "is_admin": access.admin,
        "pending": pending,
        "can_review": bool(pending and pending.can_review),
        "can_cancel": bool(pending and pending.can_cancel),
        "stage_options": _stage_options(version),
        "chosen": chosen,
        **(_reviewers_context(version, request.user) if chosen else {}),
        "request_form": StageRequestForm(initial={"to_stage": requested}),
        "lock_options": _lock_options(version, access.admin),
        "review_form": ReviewForm(),
        "comment_form": CommentForm(),
        "metadata_form": MetadataForm(
            initial={"description": version.description, "readme": version.readme}
        ),
        "tag_rows": KeyValueFormSet(initial=initial_rows(version.tags), prefix="tags"),
        "artifacts": Artifact.objects.filter(version=version).select_related("blob"),
        **aliases_context(version, access, request.user),
        "comments": Comment.objects.filter(version=version).select_related("author"),
        "events": ActivityEvent.objects.filter(version_id=version.pk)
        .select_related("version")
        .order_by("-seq")[:50],
        **flags_context(version, access),
        # Lineage may cross into models this user may not view: those stay invisible.
        **lineage_context(request, version, access),
    }
    return render(request, "catalog/version.html", context)


@login_required
@require_POST
@domain_errors
def version_request_stage(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = StageRequestForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    change = request_create(
        actor=request.user,
        version=version,
        to_stage=form.cleaned_data["to_stage"],
        comment=form.cleaned_data["comment"],
        archive_existing=form.cleaned_data["archive_existing"],
    )
    messages.success(request, f"Requested {change.get_to_stage_display()}; reviewers are asked.")
    return redirect(version_url(version))


@login_required
@require_http_methods(["GET", "POST"])
@domain_errors
def version_lock(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    """GET: the confirmation page; POST: change the lock level (confirmation ticked)."""
    need = "write" if request.method == "POST" else "view"
    version = get_version_for_user(request.user, org, model, number, need=need)
    if request.method != "POST":
        access = model_access(request.user, version.model)
        context = {
            "version": version,
            "model": version.model,
            "lock_options": _lock_options(version, access.admin),
            "form": LockForm(initial={"level": request.GET.get("level")}),
        }
        return render(request, "catalog/version_lock.html", context)
    form = LockForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    version = version_set_lock_level(
        actor=request.user, version=version, level=form.cleaned_data["level"]
    )
    messages.success(
        request, f"Version {version.number} is now {version.get_lock_level_display()}."
    )
    return redirect(version_url(version))


@login_required
@require_POST
@domain_errors
def version_edit_metadata(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    """Free metadata: description, readme and tags (every lock level; the service decides)."""
    version = get_version_for_user(request.user, org, model, number, need="write")
    form = MetadataForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    changes = dict(form.cleaned_data)
    if "tags-TOTAL_FORMS" in request.POST:  # a form without the tag rows leaves them be
        tags = KeyValueFormSet(request.POST, prefix="tags")
        if not tags.is_valid():
            raise Invalid(formset_error(tags, "tags"))
        changes["tags"] = tags.as_dict()
    version_update(actor=request.user, version=version, **changes)
    messages.success(request, "Description, readme and tags saved.")
    return redirect(version_url(version))


@login_required
@require_POST
@domain_errors
def version_comment(request: HttpRequest, org: str, model: str, number: int) -> HttpResponse:
    version = get_version_for_user(request.user, org, model, number)
    form = CommentForm(request.POST)
    if not form.is_valid():
        raise Invalid(first_error(form))
    comment_add(
        actor=request.user, model=version.model, version=version, body=form.cleaned_data["body"]
    )
    messages.success(request, "Comment added.")
    return redirect(version_url(version) + "#comments")


@login_required
@require_GET
@domain_errors
def artifact_download(
    request: HttpRequest, org: str, model: str, number: int, path: str
) -> HttpResponse:
    """Streams the blob as an attachment (or redirects to the object store, with
    ARTIFACT_DOWNLOAD_REDIRECT); the bytes are never interpreted."""
    version = get_version_for_user(request.user, org, model, number)
    artifact = Artifact.objects.filter(version=version, path=path).select_related("blob").first()
    if artifact is None:
        raise NotFound(f"artifact {path} not found")
    return download_response(artifact, request, may_redirect=True)
