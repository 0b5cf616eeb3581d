from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsValidator(OAuth2Validator):
    """The standard claims of a user, and `groups`: the names of their Django groups, for
    the scope of that name (django-oauth-toolkit's public claim hooks)."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request):
        user = request.user
        profile = getattr(user, "provider_profile", None)
        return {
            "email": user.email,
            "email_verified": bool(user.email) and (profile is None or profile.email_verified),
            "preferred_username": user.username,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }
