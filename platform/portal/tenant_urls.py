"""The tenant area of the portal (/tenant/, namespace "tenants"): its needs (pages composed by
`portal.need_views`), API keys and members (`tenants.portal_views`)."""

from django.urls import path

from portal import need_views
from tenants import portal_views as views

app_name = "tenants"

urlpatterns = [
    path("needs/", need_views.NeedListView.as_view(), name="needs"),
    path("needs/new/", need_views.NeedCreateView.as_view(), name="need-create"),
    path("needs/suggestions/", need_views.NeedSuggestionsView.as_view(), name="need-suggestions"),
    path("needs/<slug:slug>/", need_views.NeedDetailView.as_view(), name="need-detail"),
    path("needs/<slug:slug>/edit/", need_views.NeedEditView.as_view(), name="need-edit"),
    path(
        "needs/<slug:slug>/subscribe/",
        need_views.NeedActionView.as_view(action="subscribe"),
        name="need-subscribe",
    ),
    path(
        "needs/<slug:slug>/keep-model/",
        need_views.NeedActionView.as_view(action="keep-model"),
        name="need-keep-model",
    ),
    path(
        "needs/<slug:slug>/retire/",
        need_views.NeedActionView.as_view(action="retire"),
        name="need-retire",
    ),
    path(
        "needs/<slug:slug>/go-live/",
        need_views.NeedActionView.as_view(action="go-live"),
        name="need-go-live",
    ),
    path("keys/", views.ApiKeyListView.as_view(), name="keys"),
    path("keys/<str:prefix>/revoke/", views.ApiKeyRevokeView.as_view(), name="key-revoke"),
    path("members/", views.MemberListView.as_view(), name="members"),
    path(
        "members/<str:username>/role/",
        views.MemberChangeView.as_view(action="role"),
        name="member-role",
    ),
    path(
        "members/<str:username>/remove/",
        views.MemberChangeView.as_view(action="remove"),
        name="member-remove",
    ),
    path("set-password/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="set-password"),
]
