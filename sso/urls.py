from django.urls import path

from sso import views

app_name = "sso"

# Beside catalog's org settings pages (catalog/urls.py's org_admin prefix).
org_admin = "orgs/<slug:org>/settings/sso/"

urlpatterns = [
    path("sso/login/", views.sso_login, name="login"),
    path("sso/callback/", views.sso_callback, name="callback"),
    path(org_admin, views.org_sso, name="org-sso"),
    path(f"{org_admin}new/", views.mapping_create_view, name="mapping-create"),
    path(f"{org_admin}<int:mapping_id>/", views.mapping_update_view, name="mapping-update"),
    path(f"{org_admin}<int:mapping_id>/delete/", views.mapping_delete_view, name="mapping-delete"),
]
