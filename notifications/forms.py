from django import forms

from notifications.models import WEBHOOK_EVENTS, Kind, Webhook

EVENT_CHOICES = [(verb, verb) for verb in WEBHOOK_EVENTS]


class PreferencesForm(forms.Form):
    """One checkbox per kind: checked means the user receives that kind of e-mail."""

    def __init__(self, *args, current: dict[str, bool], **kwargs):
        super().__init__(*args, **kwargs)
        for kind, label in Kind.choices:
            self.fields[kind] = forms.BooleanField(
                label=label, required=False, initial=current.get(kind, True)
            )


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(choices=EVENT_CHOICES, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Webhook
        fields = ["url", "events"]


class WebhookUpdateForm(WebhookForm):
    class Meta:
        model = Webhook
        fields = ["url", "events", "active"]
