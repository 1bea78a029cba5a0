from django.urls import path

from monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("needs/<slug:slug>/", views.NeedDashboardView.as_view(), name="need"),
    path("alerts/<int:pk>/ack/", views.AlertAcknowledgeView.as_view(), name="alert-ack"),
    path("alerts/<int:pk>/snooze/", views.AlertSnoozeView.as_view(), name="alert-snooze"),
]
