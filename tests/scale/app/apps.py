from django.apps import AppConfig


class ScaleConfig(AppConfig):
    name = "tests.scale.app"
    label = "scale"
    default_auto_field = "django.db.models.BigAutoField"
