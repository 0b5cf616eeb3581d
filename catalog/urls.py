from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from catalog.views import activity_export as activity_export_views
from catalog.views import aliases as alias_views
from catalog.views import browse, compare, home, register, settings, tokens, versions
from catalog.views import documentation as documentation_views
from catalog.views import flags as flag_views
from catalog.views import lineage as lineage_views
from catalog.views import org_service_accounts as org_accounts_views
from catalog.views import org_settings as org_settings_views
from catalog.views import org_teams as org_teams_views

app_name = "catalog"

version = "orgs/<slug:org>/models/<str:model>/versions/<int:number>/"
org_admin = "orgs/<slug:org>/settings/"
member = f"{org_admin}members/<str:username>/"

urlpatterns = [
    path("", home.home, name="home"),
    path(
        "account/password/",
        auth_views.PasswordChangeView.as_view(
            success_url=reverse_lazy("catalog:password-change-done")
        ),
        name="password-change",
    ),
    path(
        "account/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password-change-done",
    ),
    # The one-time link of an invitation (registry.services.members.set_password_link).
    path(
        "account/set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="registration/password_set_form.html",
            success_url=reverse_lazy("catalog:password-set-done"),
        ),
        name="password-set",
    ),
    path(
        "account/set-password/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="registration/password_set_done.html"
        ),
        name="password-set-done",
    ),
    path("account/tokens/", tokens.token_list, name="tokens"),
    path("account/tokens/new/", tokens.token_create_view, name="token-create"),
    path("account/tokens/<int:token_id>/revoke/", tokens.token_revoke_view, name="token-revoke"),
    path("models/", home.catalog_index, name="catalog-index"),
    # An organization's settings, for its admins (SPEC 4.6).
    path(org_admin, org_settings_views.org_settings, name="org-settings"),
    path(f"{org_admin}members/", org_settings_views.org_members, name="org-members"),
    path(
        f"{org_admin}members/invite/",
        org_settings_views.member_invite_view,
        name="org-member-invite",
    ),
    path(f"{org_admin}members/add/", org_settings_views.member_add_view, name="org-member-add"),
    path(f"{member}role/", org_settings_views.member_role_view, name="org-member-role"),
    path(f"{member}remove/", org_settings_views.member_remove_view, name="org-member-remove"),
    path(
        f"{member}deactivate/",
        org_settings_views.member_deactivate_view,
        name="org-member-deactivate",
    ),
    path(
        f"{member}reactivate/",
        org_settings_views.member_reactivate_view,
        name="org-member-reactivate",
    ),
    path(
        f"{member}invitation/",
        org_settings_views.member_invitation_view,
        name="org-member-invitation",
    ),
    path(f"{org_admin}teams/", org_teams_views.org_teams, name="org-teams"),
    path(f"{org_admin}teams/new/", org_teams_views.team_create_view, name="org-team-create"),
    path(
        f"{org_admin}teams/<int:team_id>/members/",
        org_teams_views.team_members_view,
        name="org-team-members",
    ),
    path(
        f"{org_admin}teams/<int:team_id>/delete/",
        org_teams_views.team_delete_view,
        name="org-team-delete",
    ),
    path(
        f"{org_admin}service-accounts/",
        org_accounts_views.org_service_accounts,
        name="org-service-accounts",
    ),
    path(
        f"{org_admin}service-accounts/new/",
        org_accounts_views.service_account_create_view,
        name="org-service-account-create",
    ),
    path(
        f"{org_admin}service-accounts/<str:name>/tokens/",
        org_accounts_views.service_account_token_view,
        name="org-service-account-token",
    ),
    path(
        f"{org_admin}service-accounts/<str:name>/tokens/<int:token_id>/revoke/",
        org_accounts_views.service_account_token_revoke_view,
        name="org-service-account-token-revoke",
    ),
    path("orgs/<slug:org>/models/", browse.catalog, name="catalog"),
    # Not under models/: "new" is a valid model name.
    path("orgs/<slug:org>/new-model/", register.model_create_view, name="model-create"),
    path("orgs/<slug:org>/models/<str:model>/", browse.model_card, name="model"),
    path(
        "orgs/<slug:org>/models/<str:model>/metadata/",
        browse.model_edit_metadata,
        name="model-metadata",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/versions/new/",
        register.version_create_view,
        name="version-create",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/versions/@<str:alias>/",
        alias_views.version_by_alias,
        name="version-by-alias",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/versions/@<str:alias>/<path:rest>",
        alias_views.version_by_alias,
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/settings/",
        settings.model_settings_update,
        name="model-settings",
    ),
    path("orgs/<slug:org>/models/<str:model>/share/", settings.model_share, name="model-grant"),
    path(
        "orgs/<slug:org>/models/<str:model>/branches/",
        settings.branch_create_view,
        name="branch-create",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/branches/<str:branch>/protection/",
        settings.branch_protect_view,
        name="branch-protect",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/compare/",
        compare.compare_versions,
        name="compare",
    ),
    path(
        "orgs/<slug:org>/models/<str:model>/activity/export/",
        activity_export_views.activity_export,
        name="activity-export",
    ),
    path(version, versions.version_detail, name="version"),
    path(f"{version}stage-request/", versions.version_request_stage, name="version-request-stage"),
    path(f"{version}lock/", versions.version_lock, name="version-lock"),
    path(f"{version}metadata/", versions.version_edit_metadata, name="version-metadata"),
    path(f"{version}comments/", versions.version_comment, name="version-comment"),
    path(f"{version}aliases/", alias_views.alias_set_view, name="alias-set"),
    path(f"{version}aliases/remove/", alias_views.alias_remove_view, name="alias-remove"),
    path(f"{version}aliases/request/", alias_views.alias_request_view, name="alias-request"),
    path(
        f"{version}documentation/",
        documentation_views.version_documentation,
        name="version-documentation",
    ),
    path(f"{version}promote/", lineage_views.version_promote_view, name="version-promote"),
    path(f"{version}flags/", flag_views.version_flag, name="version-flag"),
    path(
        f"{version}flags/<int:flag_id>/resolve/",
        flag_views.version_flag_resolve,
        name="version-flag-resolve",
    ),
    path(f"{version}artifacts/<path:path>", versions.artifact_download, name="artifact-download"),
]
