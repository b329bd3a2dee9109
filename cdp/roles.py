"""Staff roles: Django groups with the model permissions each kind of staff needs, and no more.

The groups are created by a data migration and kept in step after every ``migrate`` (new models bring new
permissions: a role defined by an app label, such as the privacy officer's ``consent``, picks them up). Staff
may add permissions to a group in the admin; syncing only ever adds the defaults back, it never takes away.
What a role may *see* of a person (PII masking) is configured separately, in ``profiles.masking``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUPPORT_AGENT = "support agent"
DEPARTMENT_STAFF = "department staff"
DATA_STEWARD = "data steward"
PRIVACY_OFFICER = "privacy officer"
ADMINISTRATOR = "administrator"


@dataclass(frozen=True)
class Role:
    name: str
    permissions: tuple[str, ...] = ()  # "app_label.codename"
    apps: tuple[str, ...] = ()  # every permission of these apps
    everything: bool = False


_READ_PROFILES = ("profiles.view_profile",)

ROLES: tuple[Role, ...] = (
    # Look people up and read them, masked. The Customer 360 page shows them the consent state; not the
    # ledger, whose rows carry identifiers in clear.
    Role(SUPPORT_AGENT, permissions=_READ_PROFILES),
    # Read profiles (masked) and their merge history; no raw payloads, no consent evidence.
    Role(DEPARTMENT_STAFF, permissions=(*_READ_PROFILES, "profiles.view_mergeevent")),
    # The quality of the data: records, merges and unmerges, the review of suggested matches and refused
    # links, identifier and survivorship rules. (Replaying quarantined records is operations: administrators.)
    Role(
        DATA_STEWARD,
        permissions=(
            *_READ_PROFILES,
            "profiles.view_identity",
            "profiles.view_sourcerecord",
            "profiles.view_mergeevent",
            "profiles.view_resolutionconflict",
            "profiles.change_resolutionconflict",
            "profiles.view_matchsuggestion",
            "profiles.change_matchsuggestion",  # accept / reject suggested matches
            "profiles.view_neverlink",
            "profiles.add_neverlink",
            "profiles.view_profilesplit",
            "profiles.add_profilesplit",  # unmerge
            "profiles.view_survivorshiprule",
            "profiles.change_survivorshiprule",
            "profiles.view_matchmodelversion",
            "ingestion.view_source",
            "ingestion.view_identifiertype",
            "ingestion.add_identifiertype",
            "ingestion.change_identifiertype",
            "ingestion.view_batch",
            "ingestion.view_inboundrecord",
        ),
    ),
    # Consent, data-subject requests, erasure, the access log: the whole consent app, and the people.
    Role(
        PRIVACY_OFFICER,
        permissions=(*_READ_PROFILES, "profiles.view_sourcerecord", "profiles.view_mergeevent"),
        apps=("consent",),
    ),
    Role(ADMINISTRATOR, everything=True),
)


@dataclass
class SyncReport:
    created_groups: list[str] = field(default_factory=list)
    missing_permissions: list[str] = field(default_factory=list)


def roles_sync(*, group_model, permission_model, roles: tuple[Role, ...] = ROLES) -> SyncReport:
    """Create the role groups and add each one's default permissions (idempotent; never removes any).

    Takes the models as arguments so a data migration can pass its historical ones."""
    report = SyncReport()
    all_permissions = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    for role in roles:
        group, created = group_model.objects.get_or_create(name=role.name)
        if created:
            report.created_groups.append(role.name)
        if role.everything:
            wanted = set(all_permissions.values())
        else:
            wanted = {all_permissions[p] for p in role.permissions if p in all_permissions}
            report.missing_permissions += [p for p in role.permissions if p not in all_permissions]
            wanted |= {pk for name, pk in all_permissions.items() if name.split(".", 1)[0] in role.apps}
        present = set(group.permissions.values_list("pk", flat=True))
        if wanted - present:
            group.permissions.add(*(wanted - present))
    return report


def sync_roles_after_migrate(sender, **kwargs) -> None:
    """post_migrate receiver. Django creates each app's permissions in that app's post_migrate, so the roles
    are synced once, for the last installed app, when every permission exists (also after a test flush)."""
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    if sender.label != list(apps.get_app_configs())[-1].label:
        return
    roles_sync(group_model=Group, permission_model=Permission)
