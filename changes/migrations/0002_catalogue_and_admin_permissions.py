"""The manual's pre-approved (standard) change kinds, and what the approver groups may see in the admin.

CAB members and approvers read change requests, votes and the timeline in the Django admin and vote with
its actions (the rules of who may vote live in changes.permissions, not in Django permissions). The
Operations Lead and the managers above maintain the catalogue of standard change kinds.
A user still needs "staff status" to open the admin at all.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

CATALOGUE = [
    ("config-parameter-update", "Configuration parameter updates within documented ranges"),
    ("log-level-change", "Log level changes"),
    ("alert-threshold-adjustment", "Alert threshold adjustments"),
    ("monitoring-dashboard-addition", "Adding new monitoring dashboards"),
    ("documentation-update", "Documentation updates"),
]
READERS = ["CAB member", "Operations Lead", "Engineering Manager", "Director", "VP/CTO"]
CATALOGUE_KEEPERS = ["Operations Lead", "Engineering Manager", "Director", "VP/CTO"]
VIEW = ["view_changerequest", "view_cabapproval", "view_changeevent", "view_standardchangekind"]
KEEP = ["add_standardchangekind", "change_standardchangekind"]


def load(apps, schema_editor):
    Kind = apps.get_model("changes", "StandardChangeKind")
    for key, name in CATALOGUE:
        Kind.objects.get_or_create(key=key, defaults={"name": name})
    app_config = apps.get_app_config("changes")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for names, codenames in ((READERS, VIEW), (CATALOGUE_KEEPERS, KEEP)):
        permissions = list(Permission.objects.filter(content_type__app_label="changes", codename__in=codenames))
        for name in names:
            group, _ = Group.objects.get_or_create(name=name)
            group.permissions.add(*permissions)


def unload(apps, schema_editor):
    apps.get_model("changes", "StandardChangeKind").objects.filter(key__in=[k for k, _ in CATALOGUE]).delete()


class Migration(migrations.Migration):
    dependencies = [("changes", "0001_initial"), ("opsconsole", "0002_groups"), ("contenttypes", "0002_remove_content_type_name")]
    operations = [migrations.RunPython(load, unload)]
