from django.urls import path

from taxonomy import portal_views

app_name = "taxonomy"

urlpatterns = [
    path("", portal_views.TaxonomyBrowseView.as_view(), name="browse"),
    path("labels/<str:key>/", portal_views.LabelDetailView.as_view(), name="label-detail"),
    path("label-sets/new/", portal_views.LabelSetCreateView.as_view(), name="label-set-create"),
    path(
        "label-sets/<slug:slug>/edit/",
        portal_views.LabelSetEditView.as_view(),
        name="label-set-edit",
    ),
    path("proposals/", portal_views.LabelProposalListView.as_view(), name="proposals"),
]
