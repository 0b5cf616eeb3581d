from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from catalog.views import activity_export as activity_export_views
from catalog.views import browse, compare, home, settings, tokens, versions
from catalog.views import documentation as documentation_views
from catalog.views import flags as flag_views
from catalog.views import lineage as lineage_views

app_name = "catalog"

version = "orgs/<slug:org>/models/<str:model>/versions/<int:number>/"

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
    path("account/tokens/", tokens.token_list, name="tokens"),
    path("account/tokens/new/", tokens.token_create_view, name="token-create"),
    path("account/tokens/<int:token_id>/revoke/", tokens.token_revoke_view, name="token-revoke"),
    path("models/", home.catalog_index, name="catalog-index"),
    path("orgs/<slug:org>/models/", browse.catalog, name="catalog"),
    path("orgs/<slug:org>/models/<str:model>/", browse.model_card, name="model"),
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
