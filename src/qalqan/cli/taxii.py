"""``qalqan taxii``: the TAXII 2.1 server's collections."""

from __future__ import annotations

import typer
from rich.table import Table

from qalqan.cli.common import JsonOption, console, print_json, transaction
from qalqan.domain.handling import TLP
from qalqan.errors import parse_field
from qalqan.interop.taxii.collections import add_collection, list_stored, remove_collection

__all__ = ["taxii_app"]

taxii_app = typer.Typer(
    help="The TAXII 2.1 server at /taxii2/: its collections.", no_args_is_help=True
)
collection_app = typer.Typer(
    help="Collections: saved queries that show each org only what it may see.",
    no_args_is_help=True,
)
taxii_app.add_typer(collection_app, name="collection")


@collection_app.command("add")
def collection_add(
    title: str = typer.Argument(..., help="Title shown to TAXII clients."),
    alias: str | None = typer.Option(None, help="A short name usable instead of the id."),
    description: str = typer.Option("", help="What the collection holds."),
    type_: list[str] = typer.Option([], "--type", "-t", help="Only these STIX types (repeat)."),
    max_tlp: str | None = typer.Option(None, help="Only objects up to this TLP, e.g. green."),
    sharing_group: str | None = typer.Option(
        None, help="Only objects shared with this group (name or id); only its members see it."
    ),
    writable: bool = typer.Option(False, help="Let writers (analysts and up) add objects."),
    json_out: bool = JsonOption,
) -> None:
    """Define a collection (it narrows, never widens, what each org may see)."""
    ceiling = parse_field("max-tlp", TLP.parse, max_tlp)
    with transaction() as conn:
        found = add_collection(
            conn,
            None,
            title,
            alias=alias,
            description=description,
            types=type_ or None,
            max_tlp=ceiling,
            sharing_group=sharing_group,
            writable=writable,
        )
    if json_out:
        print_json(found.to_dict())
    else:
        console.print(f"created collection {found.title!r} id {found.id}")


@collection_app.command("list")
def collection_list(json_out: bool = JsonOption) -> None:
    """List the stored collections (every sharing group also has one of its own)."""
    with transaction() as conn:
        found = [c.to_dict() for c in list_stored(conn, None)]
    if json_out:
        print_json(found)
        return
    table = Table("title", "alias", "types", "max tlp", "group", "writable", "id")
    for c in found:
        table.add_row(
            c["title"],
            c["alias"] or "",
            ",".join(c["types"] or ["any"]),
            c["max_tlp"] or "any",
            c["sharing_group"] or "",
            "yes" if c["writable"] else "no",
            c["id"],
        )
    console.print(table)


@collection_app.command("remove")
def collection_remove(
    collection: str = typer.Argument(..., help="Collection id or alias."),
) -> None:
    """Remove a stored collection; the objects it showed stay."""
    with transaction() as conn:
        remove_collection(conn, None, collection)
    console.print(f"removed collection {collection}")
