"""kitpy.runtime: a site folder becomes the server's ``App``.

``load_app(site_dir)`` reads kitpy.toml, imports the routes, hooks, matchers and object
bindings, and returns a :class:`SiteApp`: ``await app(request) -> Response`` inside
``async with app.lifespan():``.
"""

from __future__ import annotations

from kitpy.runtime.app import SiteApp as SiteApp
from kitpy.runtime.app import load_app as load_app
from kitpy.runtime.config import ServerConfig as ServerConfig
from kitpy.runtime.config import SiteConfig as SiteConfig
from kitpy.runtime.config import load_config as load_config
from kitpy.runtime.event import Env as Env
from kitpy.runtime.event import Platform as Platform
from kitpy.runtime.event import RequestEvent as RequestEvent
from kitpy.runtime.hooks import sequence as sequence
from kitpy.runtime.site import Site as Site
from kitpy.runtime.site import load_site as load_site

__all__ = (
    "Env",
    "Platform",
    "RequestEvent",
    "ServerConfig",
    "Site",
    "SiteApp",
    "SiteConfig",
    "load_app",
    "load_config",
    "load_site",
    "sequence",
)
