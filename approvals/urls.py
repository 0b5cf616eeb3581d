from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.pending_approvals, name="pending"),
    path("mine/", views.my_requests, name="mine"),
    path("<int:pk>/approve/", views.request_approve_view, name="approve"),
    path("<int:pk>/reject/", views.request_reject_view, name="reject"),
    path("<int:pk>/cancel/", views.request_cancel_view, name="cancel"),
]
