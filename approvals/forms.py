from django import forms


class ReviewForm(forms.Form):
    """Approve, reject or cancel: each with an optional comment."""

    comment = forms.CharField(
        required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 2}), label="Comment"
    )
