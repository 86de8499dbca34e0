"""URL routes of the Kew project."""

from django.contrib import admin
from django.urls import include, path

from kew_django.observability.views import metrics as kew_metrics
from project import views

urlpatterns = [
    path("", views.welcome, name="welcome"),
    path("imports/", include("project.imports.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("kew/metrics", kew_metrics, name="kew-metrics"),  # staff or KEW_METRICS_TOKEN
]
