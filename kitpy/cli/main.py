"""The ``kitpy`` command: new, dev, serve, routes, storage, cluster.

This is the composition root: the one place where a site (kitpy.runtime) meets the
server (kitpy.server). Every :class:`~kitpy.KitpyError` is caught here once, printed
on stderr as ``kitpy: <message>`` and answered with exit status 1; a wrong argument
is argparse's usage error, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitpy.cli.scaffold import TEMPLATES
from kitpy.cli.terminal import LOG_LEVELS
from kitpy.errors import InitError, KitpyError, SiteError

if TYPE_CHECKING:
    from kitpy.runtime.config import ClusterSettings, SiteConfig

__all__ = ("build_parser", "main")

SERVE_HOST = "127.0.0.1"
SERVE_PORT = 8000
DEV_HOST = "127.0.0.1"
DEV_PORT = 5173


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is from 0 to 65535, got {port}")
    return port


def _workers(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {value!r}") from None
    if not 1 <= count <= 256:
        raise argparse.ArgumentTypeError(f"workers is from 1 to 256, got {count}")
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitpy",
        description="File-based routes, its own HTTP/1.1 + WebSocket server, durable objects.",
    )
    parser.add_argument("--version", action="version", version=f"kitpy {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    new = commands.add_parser("new", help="create a site from a template")
    new.add_argument("directory", metavar="DIR", help="the folder to create")
    new.add_argument(
        "--template",
        default=None,
        choices=TEMPLATES,
        help="minimal (default), chat, or svelte (a Svelte + Vite front end)",
    )
    new.add_argument("--force", action="store_true", help="write into a non-empty folder")
    new.set_defaults(run=_new)

    dev = commands.add_parser("dev", help="development server, reloads on change")
    dev.add_argument("directory", metavar="DIR", nargs="?", default=".", help="the site folder")
    dev.add_argument("--host", default=DEV_HOST, help=f"address to bind (default {DEV_HOST})")
    dev.add_argument(
        "--port", type=_port, default=DEV_PORT, help=f"port (default {DEV_PORT}; 0: any free)"
    )
    _add_log_level(dev)
    dev.set_defaults(run=_dev)

    serve = commands.add_parser("serve", help="production server")
    serve.add_argument("directory", metavar="DIR", nargs="?", default=".", help="the site folder")
    serve.add_argument(
        "--host",
        default=None,
        help=f"address to bind (default: [server] host in kitpy.toml, else {SERVE_HOST})",
    )
    serve.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"port (default: [server] port in kitpy.toml, else {SERVE_PORT}; 0: any free)",
    )
    serve.add_argument(
        "--backend", choices=("asyncio", "trio"), default="asyncio", help="event loop"
    )
    _add_log_level(serve)
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="N processes on one port (SO_REUSEPORT); durable objects then need [cluster]",
    )
    serve.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    serve.set_defaults(run=_serve)

    routes = commands.add_parser("routes", help="print the route table in precedence order")
    routes.add_argument("directory", metavar="DIR", nargs="?", default=".", help="the site folder")
    routes.set_defaults(run=_routes)

    storage = commands.add_parser(
        "storage", help="export or import a site's durable storage (JSON lines)"
    )
    storage_commands = storage.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = storage_commands.add_parser(
        "export", help="write every stored key and alarm as JSON lines on stdout"
    )
    export.add_argument("directory", metavar="SITE", help="the site folder")
    export.set_defaults(run=_storage_export)
    load = storage_commands.add_parser(
        "import", help="read an export into the store the site is configured for"
    )
    load.add_argument("directory", metavar="SITE", help="the site folder")
    load.add_argument("file", metavar="FILE", help="an export (JSON lines); - for stdin")
    load.add_argument("--replace", action="store_true", help="replace what a non-empty store holds")
    load.set_defaults(run=_storage_import)

    cluster = commands.add_parser("cluster", help="inspect a site's cluster")
    cluster_commands = cluster.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = cluster_commands.add_parser(
        "status", help="nodes, their last heartbeat, how many objects each holds"
    )
    status.add_argument("directory", metavar="SITE", help="the site folder")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(run=_cluster_status)
    return parser


def _add_log_level(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="the least severe log records shown, the site's own loggers included (default info)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except KitpyError as exc:
        if isinstance(exc, InitError):
            traceback.print_exception(exc.error, file=sys.stderr)
        sys.stderr.write(f"kitpy: {_message(exc, getattr(args, 'directory', '.'))}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _message(exc: KitpyError, directory: str) -> str:
    """The error, with a site-relative file shown from where the command was run."""
    if isinstance(exc, SiteError) and exc.path is not None and directory not in ("", "."):
        path = Path(exc.path)
        if not path.is_absolute():
            where = (Path(directory) / path).as_posix()
            where = f"{where}:{exc.line}" if exc.line is not None else where
            return f"{where}: {exc.message}"
    return str(exc)


def _version() -> str:
    try:
        return version("kitpy")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


# -- commands ----------------------------------------------------------------------------


def _site_folder(directory: str, *, warn: bool = True) -> Path:
    """The site folder named on the command line; warns when it does not look like one."""
    from kitpy.cli.dev_supervisor import looks_like_a_site, not_a_site_warning

    folder = Path(directory)
    if not folder.is_dir():
        what = "it is a file" if folder.exists() else "no such folder"
        raise KitpyError(
            f"{directory}: is not a folder ({what}; expected a site with routes/, static/ ...)"
        )
    if warn and not looks_like_a_site(folder):
        sys.stderr.write(not_a_site_warning(directory) + "\n")
    return folder


def _routes(args: argparse.Namespace) -> int:
    from kitpy.cli.routes import render_routes, shadow_warnings
    from kitpy.runtime.site import load_site

    site = load_site(_site_folder(args.directory, warn=False))
    try:
        table = render_routes(site)
        if table:
            sys.stdout.write(table + "\n")
        else:
            sys.stderr.write("kitpy: no routes (add a .py file under routes/)\n")
        for warning in shadow_warnings(site):
            sys.stderr.write(f"kitpy: {warning}\n")
    finally:
        site.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from kitpy.cli.listen import listen_error
    from kitpy.cli.terminal import configure_logging
    from kitpy.protocol.limits import Limits
    from kitpy.runtime.app import ObjectsFactory, load_app
    from kitpy.runtime.config import load_config
    from kitpy.server import run
    from kitpy.server.requestid import RequestIdFormatter

    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        raise KitpyError(
            "--backend trio needs Trio, which is not installed: pip install 'kitpy[trio]'"
        )
    directory = _site_folder(args.directory, warn=args.worker is None)
    config = load_config(directory)
    host: str = args.host or config.server.host or SERVE_HOST
    port: int = args.port if args.port is not None else (config.server.port or SERVE_PORT)
    if args.port is None and config.server.port == 0:
        port = 0
    try:
        settings: dict[str, Any] = dict(config.server.limits)
        limits = Limits(**settings)
    except (TypeError, ValueError) as exc:
        raise SiteError(f"[server]: {exc}", "kitpy.toml") from None
    if args.workers > 1 and args.worker is None:
        return _serve_workers(args, directory, host, port)
    try:
        cluster = _cluster_options(args, config, port)
    except KitpyError as exc:
        sys.stderr.write(f"kitpy: {_message(exc, args.directory)}\n")
        return 2
    objects: ObjectsFactory | None = None
    if cluster is not None:
        from kitpy.cli.cluster import check_engines, cluster_objects

        if args.worker is None:  # a worker's parent has checked
            check_engines(cluster)
        objects = cluster_objects(cluster)
    if args.worker is not None:
        from kitpy.cli.workers import watch_parent

        watch_parent()
    app = load_app(directory, dev=False, objects=objects, index_static=True)
    # Lines logged while a request is handled start with its id (X-Request-Id).
    configure_logging(args.log_level, RequestIdFormatter("%(levelname)s %(name)s: %(message)s"))

    def on_ready(addresses: list[tuple[str, int]]) -> None:
        bound = addresses[0][1] if addresses else port
        shown = f"[{host}]" if ":" in host else host
        sys.stdout.write(f"kitpy serving http://{shown}:{bound}\n")
        sys.stdout.flush()

    try:
        run(
            app,
            host=host,
            port=port,
            limits=limits,
            backend=args.backend,
            allowed_origins=list(config.server.allowed_origins)
            if config.server.allowed_origins is not None
            else None,
            shutdown_close_code=1001,
            on_ready=on_ready,
            reuse_port=args.worker is not None,
        )
    except OSError as exc:
        raise KitpyError(listen_error(host, port, exc, command="kitpy serve")) from None
    finally:
        app.close()
    return 0


def _cluster_options(
    args: argparse.Namespace, config: SiteConfig, port: int
) -> ClusterSettings | None:
    """The cluster settings (or None), refusing options a cluster cannot take."""
    from kitpy.runtime.config import cluster_settings

    cluster = cluster_settings(config, os.environ, port=port)
    if cluster is not None and args.backend == "trio":
        raise KitpyError(
            "--backend trio: a cluster node runs on asyncio only "
            f"(a cluster is configured by {cluster.source('postgres')})"
        )
    if cluster is None and args.workers > 1 and config.objects:
        names = ", ".join(config.objects)
        raise KitpyError(
            f"--workers {args.workers}: kitpy.toml [objects] binds durable objects ({names}), "
            "which need a cluster to run on several processes: set [cluster] postgres and "
            "nats in kitpy.toml (or KITPY_POSTGRES and KITPY_NATS); see docs/cluster.md"
        )
    return cluster


def _serve_workers(args: argparse.Namespace, directory: Path, host: str, port: int) -> int:
    from kitpy.cli.workers import WorkerPlan, reserve_port, supervise
    from kitpy.runtime.config import load_config
    from kitpy.runtime.site import load_site

    config = load_config(directory)
    reserved, port = reserve_port(host, port)
    try:
        try:
            cluster = _cluster_options(args, config, port)
        except KitpyError as exc:
            sys.stderr.write(f"kitpy: {_message(exc, args.directory)}\n")
            return 2
        load_site(directory).close()  # a broken site fails once, here
        if cluster is not None:
            from kitpy.cli.cluster import check_engines

            check_engines(cluster)
        nodes = [cluster.for_worker(i).node if cluster else "" for i in range(args.workers)]
        plan = WorkerPlan(
            command=[
                sys.executable,
                "-m",
                "kitpy",
                "serve",
                str(directory),
                "--host",
                host,
                "--port",
                str(port),
                "--backend",
                args.backend,
                "--log-level",
                args.log_level,
            ],
            workers=args.workers,
            host=host,
            port=port,
            env=[{"KITPY_NODE": node} if node else {} for node in nodes],
            nodes=nodes,
        )
        return supervise(plan)
    finally:
        reserved.close()


def _storage_export(args: argparse.Namespace) -> int:
    from kitpy.cli.storage_io import export_command

    return export_command(_site_folder(args.directory, warn=False))


def _storage_import(args: argparse.Namespace) -> int:
    from kitpy.cli.storage_io import import_command

    return import_command(_site_folder(args.directory, warn=False), args.file, replace=args.replace)


def _cluster_status(args: argparse.Namespace) -> int:
    import json

    from kitpy.cli.cluster import cluster_status, render_status
    from kitpy.runtime.config import cluster_settings, load_config

    directory = _site_folder(args.directory, warn=False)
    settings = cluster_settings(load_config(directory), os.environ, port=0)
    if settings is None:
        raise KitpyError(
            f"{args.directory}: no cluster is configured ([cluster] in kitpy.toml, or "
            "KITPY_POSTGRES and KITPY_NATS)"
        )
    status = cluster_status(settings)
    sys.stdout.write((json.dumps(status) if args.json else render_status(status)) + "\n")
    return 0


def _dev(args: argparse.Namespace) -> int:
    from kitpy.cli.dev_supervisor import dev_command

    return dev_command(args.directory, args.host, args.port, log_level=args.log_level)


def _new(args: argparse.Namespace) -> int:
    from kitpy.cli.scaffold import DEFAULT_TEMPLATE, new_command

    return new_command(args.directory, args.template or DEFAULT_TEMPLATE, force=args.force)
