"""The `tokenhouse` command: serve, migrate, bootstrap."""

import asyncio
import copy
import json
import os
import re
import secrets
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Annotated, Any, NoReturn

import typer

from tokenhouse.kit.settings import ConfigurationError, Settings, get_settings

app = typer.Typer(help="tokenhouse: a self-hosted API tokens service.", no_args_is_help=True,
                  add_completion=False)


def _settings() -> Settings:
    settings = get_settings()
    try:
        settings.hmac_key()
    except ConfigurationError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    return settings


@app.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
          workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1) -> None:
    """Serve the API. Stops cleanly on SIGTERM/SIGINT: in-flight requests finish and pending
    lastAccessAt values are written."""
    import uvicorn

    from tokenhouse.kit.migrate import is_current
    from tokenhouse.kit.server import BoundedHttpToolsProtocol

    settings = _settings()
    try:
        current = asyncio.run(is_current(settings))
    except Exception as exc:
        # Unreachable now (a database still starting, say): serve anyway; /readyz answers 503
        # until it can be reached.
        typer.secho(f"warning: cannot read the database {_safe_url(settings)} "
                    f"({type(exc).__name__}); /readyz reports 503 until it answers.",
                    err=True, fg=typer.colors.YELLOW)
        current = True
    if not current:
        typer.secho("error: the database schema is not up to date: run 'tokenhouse migrate' "
                    "first.", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    typer.echo(f"tokenhouse on http://{host}:{port} (database: {_safe_url(settings)})",
               err=True)
    # uvicorn shuts down gracefully on these signals, then raises the same signal again
    # with the handlers it found installed: make those a clean exit (code 0), as process
    # supervisors expect of a requested stop.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)
    # `http`: a bound on each request's head while it arrives (kit/server.py).
    # `proxy_headers=False`: X-Forwarded-For is not believed, from anyone. uvicorn's default
    # trusts it from 127.0.0.1, which lets a local caller write any client address into the
    # access log (and into anything that will read the client's address).
    try:
        with _metrics_directory(settings, workers):
            uvicorn.run("tokenhouse.app:create_app", factory=True, host=host, port=port,
                        workers=workers, log_level=settings.log_level,
                        log_config=_log_config(settings.log_level),
                        access_log=settings.access_log, timeout_graceful_shutdown=30,
                        server_header=False, http=BoundedHttpToolsProtocol,
                        proxy_headers=False)
    except ConfigurationError as exc:  # a setting the app refuses (it says which)
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None


# prometheus_client's multiprocess mode (kit/metrics.py) reads its directory from here.
METRICS_DIRECTORY_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def _metrics_directory(settings: Settings, workers: int) -> Iterator[None]:
    """With several workers, the directory where each writes its metrics and any of them
    reads all of them to answer /metrics: set in the environment before the workers start
    (prometheus_client picks its mode at import, in each worker).

    A directory of its own (0700, removed at exit), so that no other server's values, nor
    an earlier run's, are summed in; a directory given in PROMETHEUS_MULTIPROC_DIR (a
    supervisor's) is used instead, emptied of metric files first (the library requires a
    clean one per run). One worker keeps its metrics in memory."""
    given = os.environ.get(METRICS_DIRECTORY_ENV)
    if not settings.metrics or (workers == 1 and not given):
        yield
        return
    if given:
        for stale in _stale_metric_files(Path(given), settings):
            stale.unlink(missing_ok=True)
        yield
        return
    directory = tempfile.mkdtemp(prefix="tokenhouse-metrics-")
    os.environ[METRICS_DIRECTORY_ENV] = directory
    try:
        yield
    finally:
        del os.environ[METRICS_DIRECTORY_ENV]
        shutil.rmtree(directory, ignore_errors=True)


# prometheus_client's own files: only these are removed from a directory given to serve.
METRIC_FILE = re.compile(
    r"(counter|histogram|summary|gauge_(live)?(all|sum|min|max|mostrecent))_\d+\.db")


def _stale_metric_files(directory: Path, settings: Settings) -> list[Path]:
    """The metric files of an earlier run in `directory`, which must be a directory of this
    user's that no one else may write into and that holds no other `*.db` (a `var/` given
    by mistake held tokenhouse.db, which a `*.db` clean-up deleted)."""
    try:
        status = directory.lstat()
    except FileNotFoundError:
        raise ConfigurationError(f"{METRICS_DIRECTORY_ENV}: {directory} does not exist; "
                                 "create it (mode 0700) or leave the variable unset.") from None
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() \
            or status.st_mode & 0o022:
        raise ConfigurationError(f"{METRICS_DIRECTORY_ENV}: {directory} must be a directory "
                                 "of this user's that nobody else can write to.")
    database = settings.sqlite_path()
    if database is not None and database.resolve().parent == directory.resolve():
        raise ConfigurationError(f"{METRICS_DIRECTORY_ENV}: {directory} holds the database; "
                                 "give the metrics a directory of their own.")
    # Every *.db there is read at each scrape: a file not of prometheus_client's making
    # would fail them all, and is not ours to delete.
    foreign = sorted(path.name for path in directory.glob("*.db")
                     if not METRIC_FILE.fullmatch(path.name) or path.is_symlink())
    if foreign:
        raise ConfigurationError(f"{METRICS_DIRECTORY_ENV}: {directory} holds files that are "
                                 f"not metric files ({', '.join(foreign[:3])}); give the "
                                 "metrics a directory of their own.")
    return list(directory.glob("*.db"))


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's own logging, and the service's loggers (`tokenhouse.*`) through the same
    handler at the same level: without it their warnings reached stderr unformatted and
    their information (cache stats at shutdown) not at all."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["tokenhouse"] = {"handlers": ["default"], "level": level.upper(),
                                      "propagate": False}
    return config


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


@app.command()
def migrate() -> None:
    """Bring the database schema (and the module catalog) up to date."""
    from tokenhouse.kit.migrate import upgrade

    settings = _settings()
    upgrade(settings)
    typer.echo(f"database is up to date ({_safe_url(settings)})", err=True)


@app.command()
def bootstrap(
    account_name: Annotated[str, typer.Option(help="Name of the Operations account, when "
                                                   "one is created.")] = "Operations",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    if_empty: Annotated[bool, typer.Option(help="Do nothing if any account exists.")] = False,
) -> None:
    """Create the Operations account if there is none, and a new admin token with every
    module. The secret is printed once; it cannot be shown again."""
    from tokenhouse.accounts.schemas import render_account
    from tokenhouse.bootstrap import bootstrap as run_bootstrap
    from tokenhouse.kit.timeutil import utcnow
    from tokenhouse.tokens.lifecycle import Policy
    from tokenhouse.tokens.schemas import render_token

    settings = _settings()

    async def run() -> dict[str, Any] | None:
        async with _session(settings) as session:
            result = await run_bootstrap(session=session, key=settings.hmac_key(),
                                         account_name=account_name, if_empty=if_empty,
                                         policy=Policy.of(settings.max_token_lifetime_days))
            await session.commit()
        if result is None:
            return None
        return {"account": render_account(result.account),
                "token": render_token(result.token, now=utcnow(), dynamic={
                    "lastAccessAt": None, "lastAccessIps": [], "previousSecret": None,
                    "token": result.secret})}

    output = asyncio.run(run())
    if output is None:
        typer.echo("tokenhouse already has accounts; no token created (run "
                   "'tokenhouse bootstrap' to make a new admin token).", err=True)
        return
    if as_json:
        typer.echo(json.dumps(output, indent=2))
        return
    account, token = output["account"], output["token"]
    typer.echo(f"Operations account: {account['id']} ({account['name']})\n"
               f"Admin token:        {token['id']}\n\n"
               f"    {token['token']}\n\n"
               "This secret is shown once and cannot be recovered: keep it now.")


@app.command("export")
def export_store(
    file: Annotated[Path | None, typer.Argument(help="Where to write (default: stdout). "
                                                     "Written with mode 0600.")] = None,
) -> None:
    """Write the whole store as JSON Lines: accounts, modules, then tokens (with their secret
    hashes, so they authenticate again after an import with the same secret key)."""
    from tokenhouse.transfer.service import export_lines

    settings = _settings()

    async def run(out: IO[str]) -> int:
        count = 0
        async with _session(settings) as session, \
                aclosing(export_lines(session=session)) as lines:
            async for line in lines:
                out.write(line + "\n")
                count += 1
        return count

    with _database_errors(settings, "nothing was exported"):
        if file is None:
            count = asyncio.run(run(sys.stdout))
        else:
            with _private_file(file) as out:
                count = asyncio.run(run(out))
    typer.echo(f"exported {count} objects", err=True)


@contextmanager
def _private_file(path: Path) -> Iterator[IO[str]]:
    """A new file at `path` that only its owner can read (it holds every secret hash).

    Written beside `path` with mode 0600 from the start (O_CREAT|O_EXCL, never a moment
    with the umask's mode), then renamed over it: a file already there is replaced, not
    written through, so its looser mode (or a link it is) never applies to the export, and
    an export that fails half-way leaves the previous one whole."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror or exc}")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        try:
            os.replace(temporary, path)
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror or exc}")
    finally:
        temporary.unlink(missing_ok=True)


@app.command("import")
def import_store(
    file: Annotated[Path, typer.Argument(help="A JSON Lines file made by 'export'.")],
) -> None:
    """Load an export file, keeping ids and timestamps. All or nothing: a bad line is named
    with its line number and nothing is written. The file is read as a stream, a chunk of
    lines at a time."""
    from tokenhouse.transfer.service import ImportFailed, bounded_lines, import_lines

    settings = _settings()
    if not file.is_file():
        _fail(f"no file {file}", code=2)
    show_progress = sys.stderr.isatty()
    try:
        total = 0
        if show_progress:  # a first pass, for the progress bar only
            with file.open("rb") as counted:  # by blocks: a line may be of any length
                total = sum(block.count(b"\n") for block in iter(
                    lambda: counted.read(1 << 20), b""))
        lines = file.open(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}", code=2)

    async def run(progress: Any) -> Any:
        async with _session(settings) as session:
            result = await import_lines(session=session, lines=bounded_lines(lines),
                                        progress=progress)
            await session.commit()
            return result

    with lines, _database_errors(settings, "nothing was imported"):
        try:
            if show_progress:
                with typer.progressbar(length=total, label="checking", file=sys.stderr) as bar:
                    result = asyncio.run(run(bar.update))
            else:
                result = asyncio.run(run(None))
        except ImportFailed as exc:
            _fail(exc.detail)
        except UnicodeDecodeError:
            _fail("the file is not UTF-8 text; nothing was imported.")
    typer.echo(f"imported {result.accounts} accounts, {result.modules} modules, "
               f"{result.tokens} tokens", err=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


@contextmanager
def _database_errors(settings: Settings, outcome: str) -> Iterator[None]:
    """A database that cannot be reached, or refuses a statement, is a message and exit code
    1, not a traceback. The driver's own text is not shown: it can quote the values of a
    statement."""
    from asyncpg import InterfaceError, PostgresError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    # The driver's own errors too: an import's COPY is sent by asyncpg itself.
    except (SQLAlchemyError, PostgresError, InterfaceError, OSError) as exc:
        _fail(f"the database {_safe_url(settings)} failed ({type(exc).__name__}); {outcome}.")


tokens_app = typer.Typer(help="API tokens, as the platform operator sees them.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


@tokens_app.command("list")
def list_tokens(
    query: Annotated[str, typer.Option(help="A query string, as after '?' in "
                                            "GET /public/v1/accounts/api-tokens?...")] = "",
) -> None:
    """Print, as JSON, what GET /public/v1/accounts/api-tokens?QUERY answers to the platform
    operator (every account, Deleted tokens included): same parser, same services."""
    from tokenhouse.auth.actor import system_actor
    from tokenhouse.kit import paging
    from tokenhouse.kit.problems import Problem
    from tokenhouse.modules.repository import all_modules
    from tokenhouse.tokens import service
    from tokenhouse.tokens.repository import RESOURCE
    from tokenhouse.tokens.views import spliced

    settings = _settings()

    async def run() -> dict[str, Any]:
        async with _session(settings) as session:
            catalog = await all_modules(session)
            actor = system_actor(frozenset(m.name for m in catalog),
                                 frozenset(m.id for m in catalog))
            return await paging.list_response(
                query, RESOURCE,
                lambda parsed: service.list_tokens(session=session, actor=actor, query=parsed),
                lambda item: item.view.body(spliced(item.view, None, accessed=item.accessed)))

    try:
        body = asyncio.run(run())
    except Problem as exc:
        typer.echo(json.dumps({"status": exc.status, "detail": exc.detail,
                               "errors": exc.errors}, indent=2))
        raise typer.Exit(1) from None
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[Any]:
    from tokenhouse.kit.db import create_engine, session_factory

    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


def _safe_url(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


