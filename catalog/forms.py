"""Forms of the browsing UI: they validate and normalise; services decide."""

from django import forms

from registry.models import LockLevel, ModelPermission, Stage, Visibility

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
