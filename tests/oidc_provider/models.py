from django.conf import settings
from django.db import models


class Profile(models.Model):
    """Whether the provider vouches for the user's e-mail address (email_verified)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider_profile"
    )
    email_verified = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.user} (e-mail verified: {self.email_verified})"
