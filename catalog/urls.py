from django.urls import path

from catalog import tokens, views

app_name = "catalog"

urlpatterns = [
    path("", views.home, name="home"),
    path("account/tokens/", tokens.token_list, name="tokens"),
    path("account/tokens/new/", tokens.token_create_view, name="token-create"),
    path("account/tokens/<int:token_id>/revoke/", tokens.token_revoke_view, name="token-revoke"),
]
