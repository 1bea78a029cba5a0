from django.urls import path

from records import portal_views as views

app_name = "records"

urlpatterns = [
    path("", views.RecordListView.as_view(), name="list"),
    path("<slug:slug>/", views.RecordView.as_view(), name="record"),
    path("<slug:slug>/export.md", views.ExportView.as_view(), name="export"),
    path(
        "<slug:slug>/sections/<slug:kind>/edit/",
        views.SectionEditView.as_view(),
        name="section-edit",
    ),
    path("<slug:slug>/items/new/", views.ItemEditView.as_view(), name="item-new"),
    path("<slug:slug>/items/<int:pk>/edit/", views.ItemEditView.as_view(), name="item-edit"),
    path("<slug:slug>/items/<int:pk>/history/", views.HistoryView.as_view(), name="history"),
]
