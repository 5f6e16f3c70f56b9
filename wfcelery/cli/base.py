"""What every command shares: exit codes, the one-line errors, loading the Celery app and the engine,
parsing params and definitions."""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from celery import Celery

from wfcelery.client.audit import acting_as
from wfcelery.client.engine import Engine
from wfcelery.definition.limits import Limits
from wfcelery.definition.loader import load
from wfcelery.definition.model import Workflow
from wfcelery.errors import DefinitionError, RunFailed, WaitTimeout, WfCeleryError
from wfcelery.install import install

#: The run succeeded / the command did what it was asked.
EXIT_OK = 0


#: The run ended FAILED or CANCELLED.
EXIT_RUN_FAILED = 1


#: Bad input: unknown run, invalid definition, refused control operation, Redis/broker unreachable.
EXIT_BAD_INPUT = 2


#: ``--timeout`` passed first; the run goes on.
EXIT_TIMEOUT = 3


APP_ENVVARS = ["WFCELERY_APP", "CELERY_APP"]


class CliError(click.ClickException):
    """One line on stderr and an exit code (2 here; subclasses for 1 and 3)."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(click.style("Error: ", fg="red") + self.format_message(), err=True)


class RunFailedExit(CliError):
    exit_code = EXIT_RUN_FAILED


class TimeoutExit(CliError):
    exit_code = EXIT_TIMEOUT


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    raise {EXIT_RUN_FAILED: RunFailedExit, EXIT_TIMEOUT: TimeoutExit}.get(code, CliError)(message)


def errors_to_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn wfcelery, broker and Redis errors into one message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kombu.exceptions import OperationalError
        from redis.exceptions import RedisError

        try:
            return fn(*args, **kwargs)
        except RunFailed as e:
            fail(str(e), EXIT_RUN_FAILED)
        except WaitTimeout as e:
            fail(f"{e} (the run goes on; follow it with `watch`)", EXIT_TIMEOUT)
        except WfCeleryError as e:
            fail(str(e))
        except OperationalError as e:
            fail(f"cannot reach the Celery broker: {e}")
        except RedisError as e:
            fail(f"Redis error: {e}")
        except KeyboardInterrupt:
            click.echo("", err=True)
            raise click.exceptions.Exit(130) from None

    return wrapper


class CliContext:
    """``ctx.obj`` of the standalone ``wfcelery`` command: the ``-A`` value, loaded on first use."""

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self._app: Celery | None = None

    @property
    def app(self) -> Celery | None:
        if self._app is None and self.spec:
            self._app = load_app(self.spec)
        return self._app


def load_app(spec: str) -> Celery:
    """Load ``module:attribute`` (or ``module``, ``package``) exactly as ``celery -A`` does."""
    from celery.app.utils import find_app

    try:
        app = find_app(spec)
    except Exception as e:
        fail(f"cannot load the Celery app {spec!r}: {_load_problem(spec, e)}")
    if not isinstance(app, Celery):
        fail(f"{spec!r} is a {type(app).__name__}, not a Celery app")
    return app


def _load_problem(spec: str, error: Exception) -> str:
    """What went wrong loading ``spec``: for ``module:attribute`` whose module imports, the attribute is
    what is missing (celery's ``find_app`` reports it as the whole spec not being a module)."""
    module, _, attribute = spec.partition(":")
    found = sys.modules.get(module) if attribute and isinstance(error, ImportError) else None
    try:
        missing = found is not None and not hasattr(found, attribute)
    except Exception:  # a module __getattr__ that raises something else: the original error says more
        missing = False
    if missing:
        return f"module {module!r} has no attribute {attribute!r}"
    return f"{type(error).__name__}: {error}"


def app_of(ctx: click.Context, required: bool = True) -> Celery | None:
    obj = ctx.find_object(CliContext)
    if obj is not None:
        app = obj.app
    else:  # under `celery ... wf`: celery loaded the app; without -A it is a default app we ignore
        root = ctx.find_root()
        given = root.params.get("app") is not None
        app = getattr(ctx.obj, "app", None) if given else None
    if app is None and required:
        fail("no Celery app: pass -A module:app (or set WFCELERY_APP)")
    return app


def engine_of(ctx: click.Context) -> Engine:
    """The app's engine; what the command writes is audited as ``cli:<os user>``."""
    app = app_of(ctx)
    assert app is not None
    root = ctx.find_root()
    if not root.meta.get("wfcelery_actor"):  # for this command only (it may run inside a larger program)
        root.meta["wfcelery_actor"] = root.with_resource(acting_as(f"cli:{getpass.getuser()}"))
    return install(app)


def stdout_tty() -> bool:
    return sys.stdout.isatty()


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=repr))


def parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; a value that is valid JSON (``5``, ``true``, ``[1, 2]``) is parsed, else a string."""
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def workflow_of(path: str, limits: Limits) -> Workflow:
    with definition_errors(path):
        return load(Path(path), limits.max_plan_bytes)


def limits_of(app: Celery | None) -> Limits:
    """The app's ``wfcelery_max_*`` bounds (the defaults without an app)."""
    return Limits.from_conf(app.conf) if app is not None else Limits()


@contextmanager
def definition_errors(path: str) -> Iterator[None]:
    """Definition errors name the file (loader errors already do, with line and column)."""
    try:
        yield
    except DefinitionError as e:
        message = str(e)
        fail(message if message.startswith(path) else f"{path}: {message}")


def epilog(text: str) -> str:
    return "\b\nExample:\n" + "\n".join("  " + line for line in text.strip().splitlines())
