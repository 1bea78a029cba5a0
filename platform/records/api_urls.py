from django.urls import path

from records import api

app_name = "records-api"

urlpatterns = [
    path("records/", api.RecordListView.as_view(), name="records"),
    path("record-search/", api.SearchView.as_view(), name="search"),
    path("lessons/related/", api.RelatedLessonsView.as_view(), name="related-lessons"),
    path("records/<slug:slug>/", api.RecordDetailView.as_view(), name="record"),
    path("records/<slug:slug>/export", api.RecordExportView.as_view(), name="export"),
    path("records/<slug:slug>/sections/<slug:kind>/", api.SectionView.as_view(), name="section"),
    path("records/<slug:slug>/items/", api.ItemListView.as_view(), name="items"),
    path("records/<slug:slug>/items/<int:pk>/", api.ItemDetailView.as_view(), name="item"),
    path(
        "records/<slug:slug>/items/<int:pk>/revisions/",
        api.RevisionListView.as_view(),
        name="revisions",
    ),
    path(
        "records/<slug:slug>/retrospective-draft",
        api.DraftView.as_view(),
        name="retrospective-draft",
    ),
]
