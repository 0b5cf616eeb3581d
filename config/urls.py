from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.urls import api
from catalog.views.login import login_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("mlflow/", include("mlflow_api.urls")),
    path("login/", login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("notifications/", include("notifications.urls")),
    path("approvals/", include("approvals.urls")),
    path("", include("sso.urls")),
    path("", include("catalog.urls")),
]

# A body too large (413) and a database busy (503) wherever they are raised: config/errors.py.
handler400 = "config.errors.bad_request"
handler500 = "config.errors.server_error"
