"""The ``salespulse`` command: data, training, serving and prediction commands (see the package docstring).

Errors a user can act on (no warehouse, a locked warehouse, an unreachable registry or service, a rejected
file) end in one line and exit 1; a wrong option is a usage error (exit 2). A traceback is printed only with
``--debug``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer._click.exceptions import ClickException  # typer vendors click (0.29)

from cli.console import console, say_error
from cli.data import data_app
from cli.predict import predict_app
from cli.report import report_app
from cli.serve import serve_app
from cli.train import train_app
from salespulse.config import get_settings
from salespulse.errors import Unavailable

app = typer.Typer(
    help="salespulse: sales warehouse, forecasting and segmentation models, and the service serving them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")
app.add_typer(serve_app, name="serve")
app.add_typer(predict_app, name="predict")
app.add_typer(report_app, name="report")

_debug = False


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    """Paths are resolved from the project root (SALESPULSE_HOME, default: this checkout); settings come
    from SALESPULSE_* variables (see the README's configuration table)."""
    global _debug
    _debug = debug


def main() -> None:
    # Each checkout keeps its own BentoML store, set before anything imports bentoml.
    os.environ.setdefault("BENTOML_HOME", str(get_settings().bentoml_store))
    try:
        code = app(standalone_mode=False)
    except ClickException as usage:  # a wrong option or value: one line, exit 2
        hint = f" (see '{usage.ctx.command_path} --help')" if getattr(usage, "ctx", None) else ""
        console.print(f"[red]error:[/] {escape(usage.format_message())}{hint}", highlight=False)
        sys.exit(usage.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as error:
        if _debug or "--debug" in sys.argv:
            raise
        say_error(error)
        if not isinstance(error, Unavailable):
            console.print("[dim](run with --debug for the traceback)[/]")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
