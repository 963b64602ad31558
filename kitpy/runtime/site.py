"""Site: a site folder loaded once: config, route table, endpoints, hooks, bindings."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitpy.errors import SiteError
from kitpy.routing import RouteTable, build_table
from kitpy.runtime.config import SiteConfig, load_config
from kitpy.runtime.dispatch import Endpoint, endpoint_from_module
from kitpy.runtime.hooks import HandleError
from kitpy.runtime.loader import (
    activate_site,
    deactivate_site,
    display_path,
    import_binding,
    import_file,
    load_matchers,
    route_module_name,
)

__all__ = ("Site", "load_site")


@dataclass
class Site:
    """Everything the app needs from a site folder, built once per (re)load."""

    root: Path
    config: SiteConfig
    table: RouteTable
    #: Route id -> its handlers.
    endpoints: dict[str, Endpoint]
    handle: Callable[..., Any] | None = None
    handle_error: HandleError | None = None
    #: ``init()`` of hooks.py: runs once before the first request.
    init: Callable[..., Any] | None = None
    #: Binding name -> DurableObject subclass, from ``[objects]``.
    bindings: dict[str, type[Any]] = field(default_factory=dict)
    _closed: bool = field(default=False, repr=False)

    @property
    def static_dir(self) -> Path:
        return self.root / "static"

    @property
    def state_dir(self) -> Path:
        return self.root / ".kitpy"

    def display(self, path: Path | str) -> str:
        """``path`` relative to the site, as messages show it."""
        return display_path(self.root, path)

    def close(self) -> None:
        """Forget the site's modules and take it off ``sys.path``."""
        if not self._closed:
            self._closed = True
            deactivate_site(self.root)


def load_site(site_dir: Path | str) -> Site:
    """Load the site at ``site_dir``: read kitpy.toml, import every Python file.

    Raises:
        SiteError: the folder is missing, a file fails to import (names file and line),
            two routes conflict, or a matcher is unknown.
        ConfigError: kitpy.toml is bad or names a binding that does not resolve.
    """
    root = Path(site_dir).resolve()
    if not root.is_dir():
        raise SiteError("is not a folder (expected a site with routes/, static/ ...)", site_dir)
    config = load_config(root)
    activate_site(root)
    try:
        matchers = load_matchers(root)
        routes_dir = root / "routes"
        try:
            table = build_table(routes_dir, matchers)
        except SiteError as exc:
            if exc.path is None or not Path(exc.path).is_absolute():
                raise
            message = exc.message.replace(f"{root}{os.sep}", "")
            raise type(exc)(message, display_path(root, exc.path), exc.line) from None
        endpoints: dict[str, Endpoint] = {}
        for route in table.routes:
            file = route.file if route.file.is_absolute() else routes_dir / route.file
            shown = display_path(root, file)
            module = import_file(root, file, route_module_name(routes_dir, file))
            endpoints[route.id] = endpoint_from_module(module, route.id, shown)
        handle = handle_error = init = None
        hooks_file = root / "hooks.py"
        if hooks_file.is_file():
            hooks = import_file(root, hooks_file, "hooks")
            handle = _hook(hooks, "handle")
            handle_error = _hook(hooks, "handle_error")
            init = _hook(hooks, "init")
        bindings = {name: import_binding(root, config, name) for name in config.objects}
    except BaseException:
        deactivate_site(root)
        raise
    return Site(
        root=root,
        config=config,
        table=table,
        endpoints=endpoints,
        handle=handle,
        handle_error=handle_error,
        init=init,
        bindings=bindings,
    )


def _hook(module: Any, name: str) -> Any:
    value = getattr(module, name, None)
    if value is not None and not callable(value):
        raise SiteError(f"{name} must be a function, got {type(value).__name__}", "hooks.py")
    return value
