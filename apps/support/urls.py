from django.urls import path

from apps.support import views

app_name = "support"

urlpatterns = [
    path("", views.index, name="index"),
    path("kb/new/", views.kb_create, name="kb_create"),
    path("kb/<slug:slug>/", views.kb_detail, name="kb"),
    path("kb/<slug:slug>/upload/", views.document_upload, name="document_upload"),
    path("kb/<slug:slug>/paste/", views.document_paste, name="document_paste"),
    path("kb/<slug:slug>/url/", views.document_url, name="document_url"),
    path("kb/<slug:slug>/documents/<int:pk>/delete/", views.document_delete, name="document_delete"),
]
