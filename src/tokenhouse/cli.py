"""The `tokenhouse` command: serve, migrate, bootstrap."""

import asyncio
import json
import signal

from typing import Annotated

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
    uvicorn.run("tokenhouse.app:create_app", factory=True, host=host, port=port,
                workers=workers, log_level=settings.log_level, timeout_graceful_shutdown=30,
                server_header=False)


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
    from tokenhouse.kit.db import create_engine, session_factory
    from tokenhouse.tokens.schemas import render_token

    settings = _settings()

    async def run() -> dict | None:
        engine = create_engine(settings)
        try:
            async with session_factory(engine)() as session:
                result = await run_bootstrap(session=session, key=settings.hmac_key(),
                                             account_name=account_name, if_empty=if_empty)
                await session.commit()
        finally:
            await engine.dispose()
        if result is None:
            return None
        return {"account": render_account(result.account),
                "token": render_token(result.token, last_access=None, secret=result.secret)}

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


def _safe_url(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


