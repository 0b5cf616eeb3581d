"""Forms of the browsing UI: they validate and normalise; services decide."""

import json
import re

from django import forms

from registry.models import LockLevel, ModelPermission, RegisteredModel, Stage, Visibility

SORTS = {
    "name": ("Name", "name"),
    "-updated": ("Recently updated", "-updated_at"),
    "-versions": ("Most versions", "-version_count"),
}


class CatalogSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=500,
        label="Search",
        help_text="A name, team=nlp, or a query: stage == production and metrics.auc >= 0.9",
    )
    stage = forms.ChoiceField(
        required=False,
        label="Has a version in",
        choices=[("", "Any stage"), *Stage.choices],
    )
    sort = forms.ChoiceField(
        required=False,
        label="Sort by",
        choices=[(key, label) for key, (label, _) in SORTS.items()],
    )


LANGUAGE = re.compile(r"==|!=|>=|<=|[<>~]|\s(in|and|or)\s|^not\s", re.IGNORECASE)


def uses_query_language(query: str) -> bool:
    """Whether the catalog's search text is a query (SPEC 3.9) rather than words."""
    return LANGUAGE.search(query) is not None


# A model's own tag searched as `key=value`: a key as the query language spells one, that
# the ORM reads as a key of `tags` (not a lookup such as `contains`, nor a path with `__`).
TAG_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:\-]*")


def model_tag_query(query: str) -> tuple[str, str] | None:
    """(key, value) when `query` is `key=value` on a model's tags, else None."""
    key, equals, value = query.partition("=")
    key = key.strip()
    if not equals or not TAG_KEY.fullmatch(key) or "__" in key:
        return None
    if RegisteredModel._meta.get_field("tags").get_lookup(key) is not None:
        return None
    return key, value.strip()


class VersionFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=500, label="Query")
    stage = forms.ChoiceField(required=False, choices=[("", "Any stage"), *Stage.choices])
    branch = forms.CharField(required=False, max_length=128)


class ActivityFilterForm(forms.Form):
    verb = forms.CharField(required=False, max_length=64, label="Verb starts with")
    at = forms.DateTimeField(
        required=False,
        label="State at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    )


class StageRequestForm(forms.Form):
    to_stage = forms.ChoiceField(choices=Stage.choices, label="New stage")
    comment = forms.CharField(
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Why? (reviewers read this)",
    )
    archive_existing = forms.BooleanField(
        required=False, label="Archive the versions now in production when this one lands"
    )


class LockForm(forms.Form):
    level = forms.ChoiceField(choices=LockLevel.choices, label="New lock level")
    confirm = forms.BooleanField(
        required=True,
        label="I understand what this lock level allows",
        error_messages={"required": "Tick the confirmation to change the lock level."},
    )


class MetadataForm(forms.Form):
    """Free metadata: editable at every lock level by write users (SPEC 3.2)."""

    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Description (Markdown)"
    )
    readme = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), label="Readme (Markdown)"
    )


class CommentForm(forms.Form):
    body = forms.CharField(
        max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}), label="Add a comment"
    )


class ModelSettingsForm(forms.Form):
    visibility = forms.ChoiceField(choices=Visibility.choices)
    required_approvals = forms.IntegerField(
        required=False, min_value=1, max_value=20, label="Required approvals (blank: org default)"
    )


class GrantForm(forms.Form):
    username = forms.CharField(required=False, max_length=150, label="User")
    team = forms.CharField(required=False, max_length=100, label="or team")
    permission = forms.ChoiceField(choices=[(p.label, p.label) for p in ModelPermission])

    def clean(self):
        data = super().clean()
        if bool(data.get("username")) == bool(data.get("team")):
            raise forms.ValidationError("Name a user or a team.")
        return data


def first_error(form: forms.Form) -> str:
    for field, errors in form.errors.items():
        prefix = "" if field == "__all__" else f"{form.fields[field].label or field}: "
        return f"{prefix}{errors[0]}"
    return "invalid form"


# Registering from the browser, and editing where you read (SPEC 4.1). Rows of names and
# values (tags, params, metrics, sharing) are formsets: a row left blank is left out.


class KeyValueForm(forms.Form):
    key = forms.CharField(required=False, max_length=250, label="Name")
    value = forms.CharField(required=False, max_length=5000, label="Value")


class BaseKeyValueFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            key = form.cleaned_data.get("key")
            if key in seen:
                raise forms.ValidationError(f"{key} is given twice")
            if key:
                seen.add(key)

    def as_dict(self, parse=None) -> dict:
        """The rows with a name, in order; `parse` reads each value (else kept as text)."""
        return {
            form.cleaned_data["key"]: parse(form.cleaned_data["value"])
            if parse
            else form.cleaned_data["value"]
            for form in self.forms
            if form.cleaned_data.get("key")
        }


KeyValueFormSet = forms.formset_factory(
    KeyValueForm,
    formset=BaseKeyValueFormSet,
    extra=3,
    max_num=100,
    absolute_max=100,
    validate_max=True,
)


def scalar(text: str):
    """A row's value as the CLI reads `--param`: a JSON scalar when it is one (0.01, 3, true,
    null), else the text itself (adam)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float, str)) else text


def initial_rows(mapping: dict | None) -> list[dict]:
    return [{"key": key, "value": value} for key, value in (mapping or {}).items()]


class ShareForm(forms.Form):
    """One grant of a new model: a user or a team, and what they may do."""

    who = forms.CharField(
        required=False,
        max_length=150,
        label="User or team name",
        widget=forms.TextInput(attrs={"list": "member-names"}),
    )
    kind = forms.ChoiceField(choices=[("user", "user"), ("team", "team")], initial="user")
    permission = forms.ChoiceField(
        choices=[(p.label, p.label) for p in ModelPermission], initial="view"
    )


ShareFormSet = forms.formset_factory(
    ShareForm, extra=3, max_num=50, absolute_max=50, validate_max=True
)


class ModelCreateForm(forms.Form):
    name = forms.CharField(
        max_length=128,
        help_text="Letters, digits, '.', '_' or '-', starting with a letter or digit.",
    )
    description = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
    readme = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 8}), label="Readme (Markdown)"
    )
    visibility = forms.ChoiceField(
        choices=Visibility.choices, initial=Visibility.ORGANIZATION, widget=forms.RadioSelect
    )
    required_approvals = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=20,
        label="Required approvals",
        help_text="Blank: the organization's setting.",
    )


class ModelMetadataForm(forms.Form):
    """A model's free text, edited on its card (write permission)."""

    description = forms.CharField(
        required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
    readme = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 8}), label="Readme (Markdown)"
    )


PARENT_REF = re.compile(r"^(?P<model>[^@:\s]+)(?:@(?P<alias>\S+)|:(?P<number>\d{1,10}))$")
SHA256_LINE = re.compile(r"^(?:sha256:)?(?P<sha256>[0-9A-Fa-f]{64})\s+\*?(?P<name>.+)$")


class VersionCreateForm(forms.Form):
    """A new version's fields; its files come as `files` (request.FILES), its params,
    metrics and tags as rows. The choices offered are display only: the service decides."""

    label = forms.CharField(
        required=False,
        max_length=128,
        help_text="A semantic version such as 1.0.0; it cannot change once set.",
    )
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Description (Markdown)"
    )
    readme = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 6}), label="Readme (Markdown)"
    )
    branch = forms.ChoiceField(choices=[])
    lock_level = forms.ChoiceField(choices=[], label="Lock level")
    framework = forms.CharField(required=False, max_length=64)
    flavor = forms.CharField(required=False, max_length=64)
    parents = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: model@alias (fraud@champion) or model:number (fraud:3).",
    )
    folder = forms.CharField(
        required=False,
        max_length=256,
        label="Folder for the files",
        help_text="Optional: weights puts model.bin at weights/model.bin.",
    )
    checksums = forms.CharField(
        required=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Expected SHA-256 (optional)",
        help_text="sha256sum's output, one file per line: a file whose bytes differ is "
        "refused and nothing is registered.",
    )

    def __init__(self, *args, branches: list[str], lock_options: list[tuple[str, str]], **kw):
        super().__init__(*args, **kw)
        self.fields["branch"].choices = [(name, name) for name in branches]
        self.fields["lock_level"].choices = lock_options

    def clean_parents(self) -> list[tuple[str, str | None, int | None]]:
        found = []
        for line in self.cleaned_data["parents"].replace(",", "\n").splitlines():
            if not line.strip():
                continue
            match = PARENT_REF.match(line.strip())
            if match is None:
                raise forms.ValidationError(
                    f"{line.strip()!r}: name a parent as model@alias or model:number"
                )
            number = match["number"]
            found.append((match["model"], match["alias"], int(number) if number else None))
        return found

    def clean_checksums(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in self.cleaned_data["checksums"].splitlines():
            if not line.strip():
                continue
            match = SHA256_LINE.match(line.strip())
            if match is None:
                raise forms.ValidationError(
                    f"{line.strip()[:80]!r} is not '<64 hexadecimal digits>  <file name>'"
                )
            found[match["name"].strip()] = match["sha256"].lower()
        return found


class AliasForm(forms.Form):
    name = forms.CharField(max_length=128, label="Alias")
    comment = forms.CharField(required=False, max_length=20_000, label="Comment")


class AliasRequestForm(AliasForm):
    action = forms.ChoiceField(choices=[("move", "point it here"), ("remove", "remove it")])


def formset_error(formset: forms.BaseFormSet, what: str) -> str:
    """The first problem of a formset, named for the page."""
    for error in formset.non_form_errors():
        return f"{what}: {error}"
    for form in formset.forms:
        if form.errors:
            return f"{what}: {first_error(form)}"
    return f"{what}: invalid rows"
