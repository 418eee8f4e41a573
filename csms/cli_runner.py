"""How the project's command lines end: every refusal becomes one line and an exit code.

Shared by `csms` and `simulator`: usage errors exit 2, refusals the caller names exit 1,
an interrupt 130; never a traceback for any of them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer


def new_app(help_text: str) -> typer.Typer:
    """A command-line app with plain (not rich) help and errors, and no completion."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
    )


def run_app(
    app: typer.Typer,
    argv: Sequence[str] | None,
    program: str,
    refusals: tuple[type[Exception], ...],
) -> None:
    """Run `app` and exit with its code; `refusals` are printed as `PROGRAM: error: ...`."""
    try:
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except typer.Abort:
        fail(program, "aborted", 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors and bad parameters
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        fail(program, message, int(getattr(exc, "exit_code", 2)))
    except refusals as exc:
        fail(program, str(exc), 1)
    sys.exit(code if isinstance(code, int) else 0)


def fail(program: str, message: str, code: int) -> None:
    sys.stderr.write(f"{program}: error: {message}\n")
    sys.exit(code)


def only_os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` if that is all it is (trio wraps task errors in groups)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None
