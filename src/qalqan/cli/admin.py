"""``qalqan org|user|key|group``: accounts of this node."""

from __future__ import annotations

import typer
from rich.table import Table

from qalqan import accounts
from qalqan.api.schemas import GroupPublic, KeyCreated, KeyPublic, OrgPublic, UserPublic
from qalqan.cli.common import JsonOption, console, print_json, transaction
from qalqan.domain.handling import TLP, Distribution
from qalqan.domain.principal import Role
from qalqan.errors import parse_field
from qalqan.store import accounts as store

__all__ = ["group_app", "key_app", "org_app", "user_app"]

org_app = typer.Typer(help="Organizations (member-state CERTs and agencies).", no_args_is_help=True)
user_app = typer.Typer(help="Users of organizations.", no_args_is_help=True)
key_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
group_app = typer.Typer(help="Sharing groups: named sets of orgs.", no_args_is_help=True)


def _table(*columns: str) -> Table:
    table = Table(*columns, header_style="bold")
    return table


@org_app.command("add")
def org_add(
    name: str = typer.Argument(..., help="Organization name, e.g. CERT-KZ"),
    country: str = typer.Option(..., "--country", "-c", help="ISO 3166-1 alpha-2 code, e.g. KZ"),
    default_tlp: str = typer.Option("amber", help="TLP of submissions that name none."),
    default_distribution: str = typer.Option("node", help="Distribution of submissions."),
    json_out: bool = JsonOption,
) -> None:
    """Add an organization and its STIX identity."""
    with transaction() as conn:
        org = accounts.add_org(
            conn,
            None,
            name,
            country,
            default_tlp=parse_field("default-tlp", TLP.parse, default_tlp),
            default_distribution=parse_field(
                "default-distribution", Distribution.parse, default_distribution
            ),
        )
    if json_out:
        print_json(OrgPublic.of(org).model_dump())
    else:
        console.print(f"added organization {org.name} ({org.country}) id {org.id}")


@org_app.command("set")
def org_set(
    org: str = typer.Argument(..., help="Org name or id."),
    default_tlp: str | None = typer.Option(None, help="TLP of submissions that name none."),
    default_distribution: str | None = typer.Option(None, help="Distribution of submissions."),
    default_sharing_group: str | None = typer.Option(
        None, help="Sharing group, with distribution sharing_group."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Change an organization's default handling."""
    with transaction() as conn:
        found = accounts.set_org_defaults(
            conn,
            None,
            org,
            tlp=parse_field("default-tlp", TLP.parse, default_tlp),
            distribution=parse_field(
                "default-distribution", Distribution.parse, default_distribution
            ),
            sharing_group_ref=default_sharing_group,
        )
    public = OrgPublic.of(found)
    if json_out:
        print_json(public.model_dump())
    else:
        console.print(
            f"{public.name}: default TLP {public.default_tlp}, "
            f"distribution {public.default_distribution}"
        )


@org_app.command("list")
def org_list(json_out: bool = JsonOption) -> None:
    """List the organizations of this node."""
    with transaction() as conn:
        found = [OrgPublic.of(o) for o in store.list_orgs(conn)]
    if json_out:
        print_json([o.model_dump() for o in found])
        return
    table = _table("name", "country", "id", "default TLP", "default distribution")
    for o in found:
        table.add_row(o.name, o.country, o.id, o.default_tlp, o.default_distribution)
    console.print(table)


@user_app.command("add")
def user_add(
    email: str = typer.Argument(..., help="The user's email, their login name."),
    org: str = typer.Option(..., "--org", "-o", help="Org name or id."),
    role: str = typer.Option("analyst", help="node-admin, org-admin, analyst, reader or sync."),
    password: bool = typer.Option(
        False, "--password", help="Ask for a password (for the web UI); keys need none."
    ),
    json_out: bool = JsonOption,
) -> None:
    """Add a user to an organization."""
    secret = (
        typer.prompt("Password", hide_input=True, confirmation_prompt=True) if password else None
    )
    with transaction() as conn:
        user = accounts.add_user(
            conn, None, email, org, parse_field("role", Role.parse, role), secret
        )
    if json_out:
        print_json(UserPublic.of(user).model_dump())
    else:
        console.print(f"added user {user.email} ({user.role}) id {user.id}")


@user_app.command("list")
def user_list(
    org: str | None = typer.Option(None, "--org", "-o", help="Only this org's users."),
    json_out: bool = JsonOption,
) -> None:
    """List users."""
    with transaction() as conn:
        org_id = store.get_org(conn, org).id if org else None
        found = [UserPublic.of(u) for u in store.list_users(conn, org_id)]
        names = {o.id: o.name for o in store.list_orgs(conn)}
    if json_out:
        print_json([u.model_dump() for u in found])
        return
    table = _table("email", "org", "role", "id")
    for u in found:
        table.add_row(u.email, names.get(u.org_id, u.org_id), u.role, u.id)
    console.print(table)


@user_app.command("disable")
def user_disable(user: str = typer.Argument(..., help="User email or id.")) -> None:
    """Disable a user: their API keys are refused until enabled again."""
    with transaction() as conn:
        found = accounts.set_user_disabled(conn, None, user, True)
    console.print(f"disabled {found.email}")


@user_app.command("enable")
def user_enable(user: str = typer.Argument(..., help="User email or id.")) -> None:
    """Enable a disabled user again."""
    with transaction() as conn:
        found = accounts.set_user_disabled(conn, None, user, False)
    console.print(f"enabled {found.email}")


@key_app.command("create")
def key_create(
    user: str = typer.Option(..., "--user", "-u", help="User email or id."),
    label: str = typer.Option("", help="What the key is for, e.g. 'suricata sensor 3'."),
    json_out: bool = JsonOption,
) -> None:
    """Create an API key. It is printed once and stored only as a hash."""
    with transaction() as conn:
        new = accounts.create_key(conn, None, user, label)
    if json_out:
        print_json(KeyCreated(**KeyPublic.of(new.record).model_dump(), key=new.secret).model_dump())
    else:
        console.print(f"API key for {user} (shown once, store it now):")
        console.print(new.secret)


@key_app.command("list")
def key_list(
    user: str | None = typer.Option(None, "--user", "-u", help="Only this user's keys."),
    json_out: bool = JsonOption,
) -> None:
    """List API keys by prefix (the keys themselves cannot be shown)."""
    with transaction() as conn:
        ids = [store.get_user(conn, user).id] if user else None
        found = [KeyPublic.of(k) for k in store.list_keys(conn, ids)]
    if json_out:
        print_json([k.model_dump() for k in found])
        return
    table = _table("prefix", "id", "label", "created", "last used", "revoked")
    for k in found:
        table.add_row(k.prefix, k.id, k.label, k.created, k.last_used or "", k.revoked or "")
    console.print(table)


@key_app.command("revoke")
def key_revoke(key: str = typer.Argument(..., help="Key id or prefix (e.g. qk_AbCdEfGh).")) -> None:
    """Revoke an API key; requests with it are refused from now on."""
    with transaction() as conn:
        found = accounts.revoke_key(conn, None, key)
    console.print(f"revoked key {found.prefix} ({found.id})")


@group_app.command("add")
def group_add(
    name: str = typer.Argument(..., help="Group name."),
    org: str = typer.Option(..., "--org", "-o", help="Owner org name or id."),
    member: list[str] = typer.Option([], "--member", "-m", help="Member org (repeat)."),
    description: str = typer.Option("", help="What the group is for."),
    json_out: bool = JsonOption,
) -> None:
    """Create a sharing group; the owner org is always a member."""
    with transaction() as conn:
        group = accounts.create_group(conn, None, name, org, member, description)
    if json_out:
        print_json(GroupPublic.of(group).model_dump())
    else:
        console.print(f"created sharing group {group.name} id {group.id}")


@group_app.command("member-add")
def group_member_add(
    group: str = typer.Argument(..., help="Group name or id."),
    org: str = typer.Argument(..., help="Org name or id."),
) -> None:
    """Add an org to a sharing group."""
    with transaction() as conn:
        found = accounts.add_group_member(conn, None, group, org)
    console.print(f"{org} is now a member of {found.name}")


@group_app.command("member-remove")
def group_member_remove(
    group: str = typer.Argument(..., help="Group name or id."),
    org: str = typer.Argument(..., help="Org name or id."),
) -> None:
    """Remove an org from a sharing group."""
    with transaction() as conn:
        found = accounts.remove_group_member(conn, None, group, org)
    console.print(f"{org} is no longer a member of {found.name}")


@group_app.command("list")
def group_list(json_out: bool = JsonOption) -> None:
    """List sharing groups and their members."""
    with transaction() as conn:
        found = [GroupPublic.of(g) for g in store.list_groups(conn)]
        names = {o.id: o.name for o in store.list_orgs(conn)}
    if json_out:
        print_json([g.model_dump() for g in found])
        return
    table = _table("name", "owner", "members", "id")
    for g in found:
        members = ", ".join(names.get(m, m) for m in g.member_org_ids)
        table.add_row(g.name, names.get(g.owner_org_id, g.owner_org_id), members, g.id)
    console.print(table)
