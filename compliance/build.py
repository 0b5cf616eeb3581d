"""The document itself: what the registry knows about a version, read in a fixed number of
queries and laid out along Annex IV, with every gap an explicit missing item."""

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from approvals.models import RequestKind, StageChangeRequest
from compliance.facts import Facts, fetch
from compliance.render import display
from registry.models import (
    INGREDIENT_FIELDS,
    LockLevel,
    ModelVersion,
)

REGULATION = "EU AI Act (Regulation (EU) 2024/1689), Annex IV"
Item = dict[str, Any]
Section = dict[str, Any]

# SPEC 3.2, as a reviewer reads it.
_WHO_MAY_CHANGE = {
    LockLevel.OPEN: "users with write permission may change its ingredients and delete it",
    LockLevel.REDACT: "only org admins may change its ingredients and delete it",
    LockLevel.CLOSED: "nobody may change its ingredients or delete it, not even an admin; "
    "changes need a new version",
}
# Dict ingredients whose changes read best key by key.
_KEYED = ("params", "metrics", "environment", "code_version")


# Items


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _name(user) -> str | None:
    return user.get_username() if user is not None else None


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def _item(
    key: str,
    label: str,
    annex: str,
    value: Any,
    *,
    kind: str = "value",
    hint: str = "",
    optional: bool = False,
    empty: str = "None recorded.",
) -> Item:
    """One line of the document. A required item without a value is marked missing with
    `hint`; an optional one (a first version has no parents) says `empty` instead."""
    item: Item = {"id": key, "label": label, "annex": annex, "type": kind}
    rows = value["rows"] if kind == "table" else value
    if _blank(rows) and not optional:
        item.update(value=None, missing=True, hint=hint)
    else:
        item.update(value=value, missing=False)
        if _blank(rows):
            item["empty"] = empty
    return item


def _field(
    key: str,
    label: str,
    annex: str,
    value: Any,
    field: str,
    *,
    kind: str = "value",
    where: str = "when registering the version",
) -> Item:
    """An item the registry has a field for: missing, naming the field, when left empty."""
    return _item(key, label, annex, value, kind=kind, hint=f"not recorded: set `{field}` {where}")


def _outside(key: str, label: str, annex: str, what: str) -> Item:
    hint = f"not kept by the registry: {what} (Annex IV {annex})"
    return _item(key, label, annex, None, hint=hint)


def _table(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"columns": columns, "rows": rows}


def _section(key: str, title: str, annex: str, items: list[Item]) -> Section:
    return {"id": key, "title": title, "annex": f"Annex IV {annex}", "items": items}


# Sections, in the order of Annex IV


def _identity(f: Facts) -> Section:
    v = f.version
    return _section(
        "identity",
        "Identity of this version",
        "1(a)",
        [
            _item("digest", "Digest", "1(a)", v.digest),
            _item("number", "Version number", "1(a)", v.number),
            _field(
                "label",
                "Version label",
                "1(a)",
                v.label,
                "label",
                where="on the version (a semantic version such as 1.0.0)",
            ),
            _item("id", "Version id", "1(a)", str(v.pk)),
            _item("model", "Registered model", "1(a)", f"{f.org.slug}/{f.model.name}"),
            _item("provider", "Provider (organization)", "1(a)", f.org.name),
            _field(
                "owner",
                "Owner",
                "1(a)",
                _name(f.model.owner),
                "owner",
                where="in the model's settings",
            ),
            _item(
                "created_by",
                "Registered by",
                "1(a)",
                _name(v.created_by),
                hint="not recorded: the user who registered it is gone",
            ),
            _item("created_at", "Registered at", "1(a)", _when(v.created_at)),
        ],
    )


def _description(f: Facts) -> Section:
    v, on_model = f.version, "on the registered model"
    return _section(
        "description",
        "Description and methods",
        "1(a), 2(a), 2(b)",
        [
            _field(
                "intended_purpose",
                "Intended purpose (model description)",
                "1(a)",
                f.model.description,
                "description",
                kind="text",
                where=on_model,
            ),
            _field(
                "design",
                "Design specifications (model readme)",
                "2(b)",
                f.model.readme,
                "readme",
                kind="text",
                where=f"{on_model} (general logic, design choices, expected output)",
            ),
            _field(
                "version_description",
                "Description of this version",
                "2(a)",
                v.description,
                "description",
                kind="text",
            ),
            _field(
                "methods",
                "Methods and development steps (version readme)",
                "2(a)",
                v.readme,
                "readme",
                kind="text",
                where="on the version (methods, steps, third-party tools used)",
            ),
            _item("tags", "Tags", "1(a)", v.tags, kind="mapping", optional=True),
        ],
    )


def _architecture(f: Facts) -> Section:
    v, env = f.version, f.version.environment
    artifacts = _table(
        ["path", "size (bytes)", "sha256"],
        [[a.path, a.blob.size, a.blob_id] for a in sorted(f.artifacts, key=lambda a: a.path)],
    )
    return _section(
        "architecture",
        "Architecture and package",
        "1(b), 1(c), 1(d), 2(c)",
        [
            _field("framework", "Framework", "2(c)", v.framework, "framework"),
            _field("flavor", "Package flavor", "1(d)", v.flavor, "flavor"),
            _field(
                "python_version",
                "Python version",
                "1(c)",
                env.get("python_version"),
                "environment.python_version",
            ),
            _field(
                "requirements",
                "Software requirements",
                "1(c)",
                env.get("requirements"),
                "environment.requirements",
                kind="code",
            ),
            _item(
                "variables",
                "Environment variables",
                "1(c)",
                env.get("variables"),
                kind="mapping",
                optional=True,
            ),
            _item(
                "artifacts",
                "Artifacts (the forms it is delivered in)",
                "1(d)",
                artifacts,
                kind="table",
                hint="not recorded: upload the model's files as artifacts of the version",
            ),
            _field(
                "input_schema", "Input schema", "1(b)", v.input_schema, "input_schema", kind="json"
            ),
            _field(
                "output_schema",
                "Output schema",
                "1(b)",
                v.output_schema,
                "output_schema",
                kind="json",
            ),
        ],
    )


def _lineage_table(versions: list[ModelVersion]) -> dict[str, Any]:
    return _table(
        ["model", "number", "digest"], [[o.model.name, o.number, o.digest] for o in versions]
    )


def _data(f: Facts) -> Section:
    v = f.version
    datasets = _table(
        ["name", "uri", "version", "digest"],
        [[d.get("name"), d.get("uri"), d.get("version"), d.get("digest")] for d in v.datasets],
    )
    return _section(
        "data",
        "Data and lifecycle",
        "2(a), 2(d), 6",
        [
            _field("datasets", "Datasets", "2(d)", datasets, "datasets", kind="table"),
            _field(
                "code_version",
                "Code version",
                "2(a)",
                v.code_version,
                "code_version",
                kind="mapping",
            ),
            _field("experiment", "Experiment", "2(a)", v.experiment_id, "experiment_id"),
            _field("source_run", "Source run", "2(a)", v.source_run, "source_run"),
            _item(
                "parents",
                "Parents (lineage)",
                "1(a)",
                _lineage_table(f.parents),
                kind="table",
                optional=True,
                empty="None: this version descends from no other.",
            ),
            _item(
                "children",
                "Children (lineage)",
                "6",
                _lineage_table(f.children),
                kind="table",
                optional=True,
                empty="None.",
            ),
            _item("branch", "Branch", "6", v.branch.name),
            _item("stage", "Stage", "6", v.stage),
        ],
    )


def _training(f: Facts) -> Section:
    v = f.version
    return _section(
        "training",
        "Hyperparameters and metrics",
        "2(b), 2(g)",
        [
            _field("params", "Hyperparameters", "2(b)", v.params, "params", kind="mapping"),
            _field(
                "metrics",
                "Validation and test metrics",
                "2(g)",
                v.metrics,
                "metrics",
                kind="mapping",
            ),
        ],
    )


def _change_text(changes: dict[str, Any]) -> str:
    parts = []
    for field, pair in sorted(changes.items()):
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            parts.append(f"{field}: {display(pair[0])} → {display(pair[1])}")
        else:
            parts.append(f"{field}: {display(pair)}")
    return "; ".join(parts)


def _ingredient_changes(previous: ModelVersion, f: Facts) -> list[list[Any]]:
    """What changed from the previous version of the branch: ingredient, before, now."""
    rows: list[list[Any]] = []
    for field in INGREDIENT_FIELDS:
        old, new = getattr(previous, field), getattr(f.version, field)
        if old == new:
            continue
        if field in _KEYED and isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    rows.append([f"{field}.{key}", old.get(key), new.get(key)])
        else:
            rows.append([field, old, new])
    before = {a.path: a.blob_id for a in previous.artifacts.all()}
    now = {a.path: a.blob_id for a in f.artifacts}
    for path in sorted(set(before) | set(now)):
        old, new = before.get(path), now.get(path)
        if old != new:
            rows.append([f"artifact {path}", old and f"sha256:{old}", new and f"sha256:{new}"])
    return rows


def _history(f: Facts) -> Section:
    versions = _table(
        ["number", "label", "branch", "stage", "lock", "digest", "registered by", "registered at"],
        [
            [
                h.number,
                h.label,
                h.branch.name,
                h.stage,
                h.lock_level,
                h.digest,
                _name(h.created_by),
                _when(h.created_at),
            ]
            for h in f.history
        ],
    )
    previous = f.previous
    changes = _table(
        ["ingredient", "before", "now"],
        [] if previous is None else _ingredient_changes(previous, f),
    )
    events = _table(
        ["time", "actor", "verb", "changes", "comment"],
        [
            [
                _when(e.created_at),
                e.actor_name,
                e.verb,
                _change_text(e.changes),
                e.data.get("comment"),
            ]
            for e in f.events
        ],
    )
    return _section(
        "history",
        "Version history and changes",
        "1(a), 6",
        [
            _item(
                "versions",
                f"Versions of {f.model.name} up to this one",
                "1(a)",
                versions,
                kind="table",
            ),
            _item(
                "changes_from_previous",
                "Changes from the previous version of the branch"
                + (f" (v{previous.number})" if previous else ""),
                "6",
                changes,
                kind="table",
                optional=True,
                empty="No ingredient changed."
                if previous
                else "No earlier version on this branch.",
            ),
            _item(
                "events",
                "Activity of this version",
                "6",
                events,
                kind="table",
                hint="not recorded: this version has no activity events",
            ),
        ],
    )


def _request_change(request: StageChangeRequest) -> str:
    if request.kind == RequestKind.STAGE:
        return f"stage {request.from_stage} → {request.to_stage}"
    if request.kind == RequestKind.ALIAS_MOVE:
        return f"alias @{request.alias_name} → v{request.version.number}"
    return f"alias @{request.alias_name} removed"


def _approvals(f: Facts) -> Section:
    requests = _table(
        [
            "request",
            "change",
            "requester",
            "status",
            "required approvals",
            "comment",
            "requested at",
            "decided at",
        ],
        [
            [
                f"#{r.pk}",
                _request_change(r),
                _name(r.requester),
                r.status,
                r.required_approvals,
                r.comment,
                _when(r.created_at),
                _when(r.decided_at),
            ]
            for r in f.requests
        ],
    )
    reviews = _table(
        ["request", "reviewer", "decision", "comment", "reviewed at"],
        [
            [f"#{r.pk}", _name(w.reviewer), w.decision, w.comment, _when(w.created_at)]
            for r in f.requests
            for w in r.reviews.all()
        ],
    )
    return _section(
        "approvals",
        "Approvals trail",
        "2(g), 3",
        [
            _item(
                "requests",
                "Stage change requests",
                "3",
                requests,
                kind="table",
                hint="not recorded: no stage change of this version has been requested",
            ),
            _item(
                "reviews",
                "Reviews",
                "2(g)",
                reviews,
                kind="table",
                hint="not recorded: no reviewer has approved or rejected a request of this version",
            ),
        ],
    )


def _lock(f: Facts) -> Section:
    v, final = f.version, f.org.closed_is_final
    lowering = (
        "never, by anyone: the version is closed and the organization is in compliance mode"
        if v.is_closed and final
        else "org admins only; raising needs write permission"
    )
    return _section(
        "lock",
        "Lock status",
        "3, 6",
        [
            _item("level", "Lock level", "6", v.lock_level),
            _item("who_may_change", "Who may change it", "3", _WHO_MAY_CHANGE[v.lock_level]),
            _item("closed_is_final", "Closed is final (compliance mode)", "3", final),
            _item("lowering", "Lowering the level", "3", lowering),
        ],
    )


def _flags(f: Facts) -> Section:
    flags = _table(
        ["severity", "summary", "details", "raised by", "raised at", "digest"],
        [
            [g.severity, g.summary, g.details, _name(g.raised_by), _when(g.created_at), g.digest]
            for g in f.flags
        ],
    )
    return _section(
        "flags",
        "Open flags (post-market monitoring)",
        "9",
        [
            _item(
                "open_flags",
                "Open flags",
                "9",
                flags,
                kind="table",
                optional=True,
                empty="No open flags.",
            )
        ],
    )


_ATTACH = "attach them to the technical file"
# What no registry can know: always missing, so that the technical file is completed.
_OUTSIDE = (
    (
        "human_oversight",
        "Human oversight measures (Article 14)",
        "2(e)",
        f"assess the oversight measures and {_ATTACH}",
    ),
    ("cybersecurity", "Cybersecurity measures", "2(h)", f"describe the measures and {_ATTACH}"),
    (
        "capabilities_and_limitations",
        "Capabilities, limitations and foreseeable risks",
        "3",
        f"describe them for the deployer and {_ATTACH}",
    ),
    (
        "metrics_appropriateness",
        "Appropriateness of the performance metrics",
        "4",
        "explain why the recorded metrics fit this system",
    ),
    ("risk_management", "Risk management system (Article 9)", "5", "attach its documentation"),
    ("standards", "Harmonised standards applied", "7", "list the standards applied"),
    ("eu_declaration", "EU declaration of conformity (Article 47)", "8", "attach a copy"),
    (
        "post_market_plan",
        "Post-market monitoring plan (Article 72)",
        "9",
        "attach the plan; open flags above are the reports received",
    ),
)


def _kept_outside() -> Section:
    items = [_outside(*row) for row in _OUTSIDE]
    return _section("outside", "Kept outside the registry", "2(e), 2(h), 3, 4, 5, 7, 8, 9", items)


def technical_documentation(version: ModelVersion, *, viewer) -> dict[str, Any]:
    """The Annex IV document of `version`, as `viewer` may see it (lineage that crosses into
    models they may not view stays out). The caller has checked that they may view it."""
    f = fetch(version, viewer)
    sections = [
        _identity(f),
        _description(f),
        _architecture(f),
        _data(f),
        _training(f),
        _history(f),
        _approvals(f),
        _lock(f),
        _flags(f),
        _kept_outside(),
    ]
    return {
        "document": "technical-documentation",
        "regulation": REGULATION,
        "title": f"Technical documentation of {f.org.slug}/{f.model.name} v{f.version.number}",
        "org": f.org.slug,
        "model": f.model.name,
        "number": f.version.number,
        "digest": f.version.digest,
        "generated_at": _when(timezone.now()),
        "missing": [
            f"{section['id']}.{item['id']}"
            for section in sections
            for item in section["items"]
            if item["missing"]
        ],
        "sections": sections,
    }
