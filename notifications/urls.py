from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("preferences/", views.edit_preferences, name="preferences"),
    path("<slug:org>/webhooks/", views.list_org_webhooks, name="org-webhooks"),
    path("<slug:org>/models/<str:model>/watch/", views.watch_model, name="watch"),
    path("<slug:org>/models/<str:model>/unwatch/", views.unwatch_model, name="unwatch"),
    path(
        "<slug:org>/models/<str:model>/webhooks/", views.create_model_webhook, name="model-webhooks"
    ),
    path("webhooks/<int:pk>/", views.show_webhook, name="webhook"),
    path("webhooks/<int:pk>/delete/", views.delete_webhook, name="webhook-delete"),
    path("deliveries/<int:pk>/replay/", views.replay_delivery, name="delivery-replay"),
]
