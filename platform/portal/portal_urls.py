from django.contrib.auth import views as auth_views
from django.urls import path

from portal import portal_views as views

app_name = "portal"

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("login/", auth_views.LoginView.as_view(template_name="portal/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("switch-tenant/", views.switch_tenant, name="switch-tenant"),
    path("language/", views.set_language, name="set-language"),
]
