"""``qalqan init``, ``serve`` and ``demo``: set up a node and run it."""

from __future__ import annotations

import os
import shutil

import typer

from qalqan.accounts import bootstrap
from qalqan.api.schemas import OrgPublic
from qalqan.cli.common import JsonOption, console, open_instance, print_json, transaction
from qalqan.demo import create_demo
from qalqan.errors import ConfigurationError
from qalqan.settings import Settings

__all__ = ["demo_command", "init_command", "serve_command"]


def init_command(
    node_name: str = typer.Option("qalqan-node", "--node-name", help="This node's name."),
    org_name: str = typer.Option("Local-CERT", "--org-name", help="The first organization."),
    country: str = typer.Option("KZ", "--country", help="ISO 3166-1 alpha-2 code of that org."),
    admin_email: str = typer.Option("admin@localhost.localdomain", help="The node admin's email."),
    json_out: bool = JsonOption,
) -> None:
    """Create the data dir, the database, the node identity, the first org and its admin.

    The admin's API key is printed once.
    """
    with transaction(create=True) as conn:
        boot = bootstrap(
            conn,
            Settings().data_dir,
            node_name=node_name,
            org_name=org_name,
            country=country,
            admin_email=admin_email,
        )
    if json_out:
        print_json(
            {
                "node": {
                    "id": boot.node.id,
                    "name": boot.node.name,
                    "public_key": boot.node.public_key,
                },
                "org": OrgPublic.of(boot.org).model_dump(),
                "admin": {"id": boot.admin.id, "email": boot.admin.email, "role": boot.admin.role},
                "api_key": boot.key.secret,
            }
        )
        return
    console.print(f"node {boot.node.name} {boot.node.id} initialised")
    console.print(f"organization {boot.org.name} ({boot.org.country}) {boot.org.id}")
    console.print(f"node admin {boot.admin.email}; API key (shown once, store it now):")
    console.print(boot.key.secret)


def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (PostgreSQL only)."),
    feeds: bool = typer.Option(
        True,
        help="Run scheduled feeds in this process (with one worker; production runs "
        "`qalqan worker` instead).",
    ),
) -> None:
    """Serve the REST API (OpenAPI docs at /docs)."""
    # The web stack loads only for this command: the others start faster without it.
    import uvicorn

    from qalqan.api import create_app
    from qalqan.feeds.schedule import Scheduler

    instance = open_instance()
    log_level = instance.settings.log_level
    console.print(f"serving on http://{host}:{port} (API docs at /docs)")
    if workers == 1:
        scheduler = Scheduler(instance) if feeds else None
        if scheduler is not None:
            scheduler.start()
        try:
            uvicorn.run(
                create_app(instance), host=host, port=port, log_level=log_level, access_log=False
            )
        finally:
            if scheduler is not None:
                scheduler.stop()
        return
    if instance.engine.dialect.name == "sqlite":
        raise ConfigurationError("several workers need PostgreSQL; SQLite serves one")
    instance.close()
    # Each worker process builds its own app (and engine) from the environment.
    uvicorn.run(
        "qalqan.api.app:app_from_environment",
        factory=True,
        workers=workers,
        access_log=False,
        host=host,
        port=port,
        log_level=log_level,
    )


def demo_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    reset: bool = typer.Option(True, help="Start from a fresh demo data dir."),
    serve: bool = typer.Option(True, help="Serve the API once the demo data is in."),
) -> None:
    """Create a demo node (orgs, users of every role, a sharing group, intelligence at every
    TLP and distribution) in the data dir, and serve it."""
    settings = Settings()
    if settings.database_url:
        raise ConfigurationError("the demo runs on its own SQLite file; unset QALQAN_DATABASE_URL")
    if reset and settings.data_dir.exists():
        if not (settings.data_dir / "qalqan.db").exists() and any(settings.data_dir.iterdir()):
            raise ConfigurationError(
                f"{settings.data_dir} is not a Qalqan data dir; not removing it"
            )
        shutil.rmtree(settings.data_dir)
    with transaction(create=True) as conn:
        demo = create_demo(conn, settings.data_dir)
    keys_file = settings.data_dir / "demo-keys.txt"
    fd = os.open(keys_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{email}\t{key}\n" for email, key in demo.keys.items())
    console.print(f"demo node ready: {demo.objects} objects, {len(demo.keys)} users")
    console.print(f"API keys of every demo user: {keys_file}")
    admin_key = demo.keys["admin@center.demo"]
    console.print("try:")
    console.print(
        f'  curl -H "Authorization: Bearer {admin_key}" http://{host}:{port}/api/v1/objects',
    )
    if serve:
        serve_command(host=host, port=port, workers=1, feeds=True)
