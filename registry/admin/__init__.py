"""The admin console of SPEC 1, for org admins: orgs, members, teams, models, versions, history.

Forms here only collect input. Every change goes through a service of registry.services,
called with actor=request.user, which checks roles and locks and writes the activity event;
a refusal (RegistryError) becomes an error message on the page and, the admin's transaction
rolling back, nothing changes. A staff user administers the orgs where their membership has
the admin role (superusers: every org) and needs no Django model permission; other staff see
nothing here. Activity events, comments and blobs are view-only.
"""

from registry.admin import activity, catalog, flags, orgs, tokens, versions

__all__ = ["activity", "catalog", "flags", "orgs", "tokens", "versions"]
