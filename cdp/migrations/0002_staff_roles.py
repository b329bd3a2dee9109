"""The staff roles (support agent, department staff, data steward, privacy officer, administrator) as Django
groups with their default permissions. Kept in step after every migrate by cdp.roles.sync_roles_after_migrate."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from cdp.roles import ROLES, roles_sync


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    roles_sync(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[role.name for role in ROLES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cdp", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ingestion", "0005_seed_anonymous_id_rule"),
        ("profiles", "0004_event"),
        ("consent", "0003_ledger_append_only_trigger"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
