"""Flags: post-market reports that a version behaves unexpectedly (SPEC 3.10).

Flags are free metadata (SPEC 3.2): they are raised and resolved at every lock level,
closed versions included.
"""

from django.db import transaction
from django.utils import timezone

from registry import validation
from registry.errors import Conflict, Invalid, NotFound
from registry.models import Flag, ModelVersion, Severity
from registry.permissions import require
from registry.services.activity import event_record

MAX_SUMMARY = 200
MAX_DETAILS = 20_000


def _facts(flag: Flag) -> dict:
    return {
        "flag": flag.pk,
        "number": flag.version.number,
        "severity": flag.severity,
        "summary": flag.summary,
    }


@transaction.atomic
def flag_raise(
    *,
    actor,
    version: ModelVersion,
    severity: str,
    summary: str,
    details: str = "",
    digest: str | None = None,
) -> Flag:
    """Anyone who may view a version flags it. A monitor may cite the digest it observed:
    a flag must name what was seen, so a digest other than the version's is refused."""
    require(actor, version.model, "view")
    if severity not in Severity.values:
        raise Invalid(f"severity must be one of {', '.join(Severity.values)}, not {severity!r}")
    validation.short_text(summary, "summary", MAX_SUMMARY)
    if not summary.strip():
        raise Invalid("a flag needs a summary")
    validation.short_text(details, "details", MAX_DETAILS)
    current = ModelVersion.objects.filter(pk=version.pk).values_list("digest", flat=True).first()
    if current is None:
        raise NotFound(f"version {version.number} of model {version.model.name} not found")
    if digest is not None:
        validation.short_text(digest, "digest", 100)
        if digest != current:
            raise Invalid(
                f"digest {digest} is not the digest of version {version.number} "
                f"of {version.model.name} ({current})",
                details={"digest": digest, "expected": current},
            )
    flag = Flag.objects.create(
        model=version.model,
        version=version,
        severity=severity,
        summary=summary.strip(),
        details=details,
        digest=current,
        raised_by=actor,
    )
    event_record(
        actor=actor,
        org=version.model.org,
        verb="flag.raised",
        target=flag,
        model=version.model,
        version=version,
        data={**_facts(flag), "digest": current},
    )
    return flag


@transaction.atomic
def flag_resolve(*, actor, flag: Flag, resolution: str = "") -> Flag:
    """Writers resolve a flag, once. The flag row is locked before deciding, so of two
    writers resolving at the same instant one succeeds and the other gets Conflict."""
    require(actor, flag.model, "write")
    validation.short_text(resolution, "resolution", MAX_DETAILS)
    locked = (
        Flag.objects.select_for_update(of=("self",))
        .select_related("model__org", "version")
        .filter(pk=flag.pk)
        .first()
    )
    if locked is None:
        raise NotFound(f"flag #{flag.pk} not found")
    if not locked.is_open:
        raise Conflict(f"flag #{locked.pk} is already resolved")
    locked.resolved_by = actor
    locked.resolved_at = timezone.now()
    locked.resolution = resolution
    locked.save(update_fields=["resolved_by", "resolved_at", "resolution"])
    event_record(
        actor=actor,
        org=locked.model.org,
        verb="flag.resolved",
        target=locked,
        model=locked.model,
        version=locked.version,
        changes={"status": ["open", "resolved"]},
        data={**_facts(locked), "comment": resolution},
    )
    return locked
