"""Registering from the browser (SPEC 4.1): a new model, and a new version with its files.

Both are plain multipart forms that work without JavaScript (rows are added by a "More
rows" button that brings the page back with them; config/static/modelvault/forms.js adds
them in place and shows the upload's progress through htmx). A refusal is shown on the form, its
inputs kept (files are chosen again), and changes nothing: a model and its grants are made
in one transaction, and version_create stores a version with all its artifacts in one.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from catalog.errors import domain_errors, shown_on_form
from catalog.forms import (
    KeyValueFormSet,
    ModelCreateForm,
    ShareFormSet,
    VersionCreateForm,
    scalar,
)
from catalog.uploads import StagingUploadHandler
from catalog.views import version_url
from registry.errors import Invalid, NotFound, RegistryError
from registry.models import Branch, LockLevel, Membership, Organization, RegisteredModel, Team
from registry.permissions import (
    get_model_for_user,
    get_org_for_user,
    get_version_by_ref,
    model_access,
)
from registry.services.registered_models import model_create, model_grant, user_by_name
from registry.services.versions import Upload, version_create

MORE_ROWS = 3


def finished(request: HttpRequest, url: str) -> HttpResponse:
    """Post/redirect/get; a form sent by htmx (with its upload progress) is told where to go
    in a header, so that the browser loads the page itself."""
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return redirect(url)


def more_rows(request: HttpRequest, prefixes: tuple[str, ...]) -> QueryDict | None:
    """When the form was sent by a "More rows" button (no JavaScript), its data with more
    blank rows in that formset, to show again; else None."""
    prefix = request.POST.get("more")
    if prefix not in prefixes:
        return None
    data = request.POST.copy()
    total = f"{prefix}-TOTAL_FORMS"
    try:
        data[total] = str(min(int(data.get(total, "0")) + MORE_ROWS, 100))
    except ValueError:
        data[total] = str(MORE_ROWS)
    return data


# A new model


def _grantees(org: Organization, rows: list[dict]) -> list[tuple[str, object, object]]:
    """(permission, user, team) of each sharing row with a name, resolved before anything
    is made: a name that is not found is a mistake on the form."""
    found = []
    for row in rows:
        who = (row.get("who") or "").strip()
        if not who:
            continue
        if row["kind"] == "team":
            team = Team.objects.filter(org=org, name=who).first()
            if team is None:
                raise Invalid(f"team {who} not found in {org.slug}")
            found.append((row["permission"], None, team))
        else:
            try:
                found.append((row["permission"], user_by_name(who), None))
            except NotFound as exc:
                raise Invalid(exc.message) from exc
    return found


def _share_names(org: Organization) -> dict:
    """Suggestions for the sharing rows: the org's members and teams (one query each)."""
    return {
        "member_names": Membership.objects.filter(org=org)
        .order_by("user__username")
        .values_list("user__username", flat=True)[:500],
        "team_names": Team.objects.filter(org=org).values_list("name", flat=True)[:500],
    }


@login_required
@require_http_methods(["GET", "POST"])
@domain_errors
def model_create_view(request: HttpRequest, org: str) -> HttpResponse:
    """Any member registers a model, and may share it at once (they own it)."""
    organization = get_org_for_user(request.user, org)
    data = request.POST if request.method == "POST" else None
    extended = more_rows(request, ("tags", "share")) if data else None
    form = ModelCreateForm(extended or data)
    tags = KeyValueFormSet(extended or data, prefix="tags")
    shares = ShareFormSet(extended or data, prefix="share")
    status = 200
    if data is not None and extended is None:
        status = 400
        if all([form.is_valid(), tags.is_valid(), shares.is_valid()]):
            try:
                model = _register_model(request.user, organization, form.cleaned_data, tags, shares)
            except RegistryError as exc:
                status = shown_on_form(form, exc)
            else:
                messages.success(request, f"Model {model.name} registered.")
                return finished(
                    request, reverse("catalog:model", args=[organization.slug, model.name])
                )
    context = {
        "org": organization,
        "form": form,
        "tags": tags,
        "shares": shares,
        "checked": status != 200,
        **_share_names(organization),
    }
    return render(request, "catalog/model_new.html", context, status=status)


def _register_model(actor, org, fields: dict, tags, shares) -> RegisteredModel:
    grants = _grantees(org, [f.cleaned_data for f in shares.forms if f.cleaned_data])
    # The model and its grants stand or fall together: a refused grant leaves no model.
    with transaction.atomic():
        model = model_create(actor=actor, org=org, tags=tags.as_dict(), **fields)
        for permission, user, team in grants:
            model_grant(actor=actor, model=model, permission=permission, user=user, team=team)
    return model


# A new version


def creation_levels(default: str, admin: bool) -> list[tuple[str, str]]:
    """The lock levels to offer a new version (display only: version_create decides). Below
    the org's default counts as lowering: offered to org admins only (SPEC 3.2)."""
    return [
        (level.value, f"{level.label} (default)" if level == default else level.label)
        for level in LockLevel
        if admin or LockLevel.rank(level) >= LockLevel.rank(default)
    ]


def _parents(request: HttpRequest, org: Organization, refs: list) -> list:
    """The parents named on the form, as this user may view them; one not found is a
    mistake on the form."""
    found = []
    for name, alias, number in refs:
        ref = f"{name}@{alias}" if alias else name
        try:
            found.append(get_version_by_ref(request.user, org, ref, number))
        except NotFound as exc:
            shown = ref if alias else f"{name}:{number}"
            raise Invalid(f"parent {shown} not found: {exc.message}") from exc
    return found


def _artifacts(files: list, folder: str, checksums: dict[str, str]) -> dict[str, Upload]:
    """The uploaded files by their path in the version, each with the SHA-256 the user gave."""
    folder = folder.strip().strip("/")
    artifacts: dict[str, Upload] = {}
    for uploaded in files:
        path = f"{folder}/{uploaded.name}" if folder else uploaded.name
        if path in artifacts:
            raise Invalid(f"two files are named {uploaded.name}: upload them in two folders")
        artifacts[path] = Upload(uploaded, checksums.get(uploaded.name))
    unknown = sorted(set(checksums) - {f.name for f in files})
    if unknown:
        raise Invalid(f"a checksum is given for {unknown[0]}, which is not among the files")
    return artifacts


@login_required
@csrf_exempt  # checked by _version_create, once the upload handler is in place
@require_http_methods(["GET", "POST"])
@domain_errors
def version_create_view(request: HttpRequest, org: str, model: str) -> HttpResponse:
    if request.method == "POST":
        # Before anything reads the form: every file of it goes to disk, never to memory.
        request.upload_handlers = [StagingUploadHandler(request)]
    # Who may register is checked before the form is read (as the API checks before it
    # reads an upload).
    registered = get_model_for_user(request.user, org, model, need="write")
    return _version_create(request, registered)


@csrf_protect
def _version_create(request: HttpRequest, registered: RegisteredModel) -> HttpResponse:
    access = model_access(request.user, registered)
    default = registered.org.default_lock_level
    branches = list(
        Branch.objects.filter(model=registered)
        .order_by("-protected", "name")
        .values_list("name", flat=True)
    )
    options = {"branches": branches, "lock_options": creation_levels(default, access.admin)}
    data = request.POST if request.method == "POST" else None
    extended = more_rows(request, ("params", "metrics", "tags")) if data else None
    initial = {"lock_level": default, "branch": Branch.MAIN}
    form = VersionCreateForm(extended or data, initial=initial, **options)
    rows = {
        prefix: KeyValueFormSet(extended or data, prefix=prefix)
        for prefix in ("params", "metrics", "tags")
    }
    status = 200
    if data is not None and extended is None:
        status = 400
        if all([form.is_valid(), *(formset.is_valid() for formset in rows.values())]):
            try:
                version = _register_version(request, registered, form.cleaned_data, rows)
            except RegistryError as exc:
                status = shown_on_form(form, exc)
            else:
                messages.success(request, f"Version {version.number} registered.")
                return finished(request, version_url(version))
    context = {
        "model": registered,
        "access": access,
        "form": form,
        "rows": rows,
        "checked": status != 200,
        "files_dropped": bool(extended is not None and request.FILES),
    }
    return render(request, "catalog/version_new.html", context, status=status)


def _register_version(request: HttpRequest, model: RegisteredModel, fields: dict, rows: dict):
    artifacts = _artifacts(request.FILES.getlist("files"), fields["folder"], fields["checksums"])
    return version_create(
        actor=request.user,
        model=model,
        lock_level=fields["lock_level"],
        branch=fields["branch"],
        label=fields["label"] or None,
        description=fields["description"],
        readme=fields["readme"],
        tags=rows["tags"].as_dict(),
        params=rows["params"].as_dict(scalar),
        metrics=rows["metrics"].as_dict(scalar),
        framework=fields["framework"],
        flavor=fields["flavor"],
        parents=_parents(request, model.org, fields["parents"]),
        artifacts=artifacts,
    )
