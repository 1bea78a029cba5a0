from django.urls import path

from taxonomy import portal_views

app_name = "taxonomy"

urlpatterns = [
    path("", portal_views.TaxonomyBrowseView.as_view(), name="browse"),
    path("labels/<str:key>/", portal_views.LabelDetailView.as_view(), name="label-detail"),
]
