from django.apps import AppConfig


class OpsconsoleConfig(AppConfig):
    name = "opsconsole"
    verbose_name = "Operations console"
