"""The ``qalqan`` command line."""

from __future__ import annotations

import sys

import typer

from qalqan import __version__
from qalqan.cli.admin import group_app, key_app, org_app, user_app
from qalqan.cli.attack import attack_app
from qalqan.cli.audit import audit_app
from qalqan.cli.cases import case_app
from qalqan.cli.common import err_console
from qalqan.cli.correlation import related_command
from qalqan.cli.detect import sweep_command, watch_command
from qalqan.cli.feeds import feed_app, warninglist_app, worker_command
from qalqan.cli.intel import export_command, import_command
from qalqan.cli.node import demo_command, init_command, serve_command
from qalqan.cli.notify import notify_app, webhook_app
from qalqan.cli.rfas import rfa_app
from qalqan.cli.scores import score_app
from qalqan.cli.search import search_app
from qalqan.cli.sightings import sighting_app
from qalqan.cli.stats import stats_app
from qalqan.cli.taxii import taxii_app
from qalqan.errors import QalqanError

__all__ = ["app", "run"]

app = typer.Typer(
    name="qalqan",
    help="Qalqan: share threat intelligence under TLP 2.0, find threats, work cases together.\n\n"
    "Works on the data dir in QALQAN_DATA_DIR (default ./.qalqan) or QALQAN_DATABASE_URL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init_command)
app.command("serve")(serve_command)
app.command("demo")(demo_command)
app.command("worker")(worker_command)
app.command("import")(import_command)
app.command("export")(export_command)
app.command("sweep")(sweep_command)
app.command("watch")(watch_command)
app.command("related")(related_command)
app.add_typer(org_app, name="org")
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="key")
app.add_typer(group_app, name="group")
app.add_typer(audit_app, name="audit")
app.add_typer(feed_app, name="feed")
app.add_typer(warninglist_app, name="warninglist")
app.add_typer(taxii_app, name="taxii")
app.add_typer(search_app, name="search")
app.add_typer(sighting_app, name="sighting")
app.add_typer(score_app, name="score")
app.add_typer(attack_app, name="attack")
app.add_typer(stats_app, name="stats")
app.add_typer(case_app, name="case")
app.add_typer(rfa_app, name="rfa")
app.add_typer(webhook_app, name="webhook")
app.add_typer(notify_app, name="notify")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qalqan {__version__}")
        raise typer.Exit


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Qalqan command line."""


def run() -> None:
    """Entry point: QalqanErrors become one line on stderr and exit code 1, never a traceback."""
    try:
        # Without standalone mode, a `typer.Exit` raised by a command comes back as its code.
        code = app(standalone_mode=False)
    except QalqanError as exc:
        where = ", ".join(f"{k}={v}" for k, v in exc.context.items())
        err_console.print(
            f"error: {exc.detail}" + (f" ({where})" if where else ""),
        )
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(1)
    except typer.TyperException as exc:  # usage errors: unknown command, missing option, ...
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err_console.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
