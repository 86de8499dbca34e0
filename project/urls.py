"""URL routes of the Kew project."""

from django.contrib import admin
from django.urls import include, path

from project import views

urlpatterns = [
    path("", views.welcome, name="welcome"),
    path("imports/", include("project.imports.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
