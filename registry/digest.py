"""A version's digest (SPEC 3.5): SHA-256 over a canonical manifest of its ingredients."""

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from registry.audit import canonical_json
from registry.models import INGREDIENT_FIELDS, Artifact, ModelVersion, VersionParent


def manifest(
    ingredients: Mapping[str, Any],
    artifacts: Iterable[tuple[str, str, int]],
    parent_digests: Iterable[str],
) -> dict[str, Any]:
    body: dict[str, Any] = {field: ingredients[field] for field in INGREDIENT_FIELDS}
    body["artifacts"] = [
        {"path": path, "sha256": sha256, "size": size} for path, sha256, size in sorted(artifacts)
    ]
    body["parents"] = sorted(parent_digests)
    return body


def digest_of(body: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


def compute_digest(version: ModelVersion) -> str:
    """The digest of a stored version, from its fields, artifacts and parents' digests."""
    artifacts = Artifact.objects.filter(version_id=version.pk).values_list(
        "path", "blob_id", "blob__size"
    )
    parents = VersionParent.objects.filter(child_id=version.pk).values_list(
        "parent__digest", flat=True
    )
    return digest_of(
        manifest({f: getattr(version, f) for f in INGREDIENT_FIELDS}, artifacts, parents)
    )
