"""URL routes of the imports app."""

from django.urls import path

from project.imports import views

app_name = "imports"

urlpatterns = [
    path("", views.import_list, name="list"),
    path("<uuid:pk>/", views.import_detail, name="detail"),
    path("<uuid:pk>/cancel", views.import_cancel, name="cancel"),
]
