"""Loading a site: import errors name file and line; the site folder is importable."""

from __future__ import annotations

import sys

import pytest

from kitpy.errors import ConfigError, RouteConflictError, SiteError
from kitpy.runtime.site import load_site
from kitpy.testing import TestClient

from .conftest import ClientFactory, MakeSite


def test_syntax_error_names_file_and_line(make_site: MakeSite) -> None:
    site = make_site({"routes/about.py": "async def get(event):\n    return {\n\ndef x(:\n"})
    with pytest.raises(SiteError, match=r"^routes/about\.py:\d+: syntax error") as info:
        load_site(site)
    assert info.value.path == "routes/about.py" and info.value.line is not None


def test_exception_at_import_names_the_line(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "x = 1\nraise ValueError('broken on purpose')\n"})
    with pytest.raises(
        SiteError, match=r"^routes/index\.py:2: error while importing: ValueError: broken"
    ):
        load_site(site)


def test_missing_import_names_the_line(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "import os\nimport no_such_module_kitpy\n"})
    with pytest.raises(SiteError, match=r"^routes/index\.py:2: .*no_such_module_kitpy"):
        load_site(site)


def test_error_in_a_helper_names_the_helper(make_site: MakeSite) -> None:
    site = make_site(
        {
            "routes/_helpers.py": "def f(:\n",
            "routes/index.py": "from routes._helpers import f\n",
        }
    )
    with pytest.raises(SiteError, match=r"^routes/_helpers\.py:1: syntax error"):
        load_site(site)


def test_hooks_syntax_error(make_site: MakeSite) -> None:
    site = make_site({"hooks.py": "async def handle(event, resolve)\n"})
    with pytest.raises(SiteError, match=r"^hooks\.py:1: syntax error"):
        load_site(site)


def test_conflicting_routes_name_both_files(make_site: MakeSite) -> None:
    site = make_site({"routes/[a].py": "", "routes/[b].py": ""})
    with pytest.raises(RouteConflictError, match=r"\[a\]\.py.*\[b\]\.py|\[b\]\.py.*\[a\]\.py"):
        load_site(site)


def test_unknown_matcher(make_site: MakeSite) -> None:
    site = make_site({"routes/[id=nope].py": ""})
    with pytest.raises(SiteError, match=r"matcher 'nope'"):
        load_site(site)


def test_upper_case_handler_names_are_pointed_out(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "x = 1\n\nasync def GET(event):\n    return {}\n"})
    with pytest.raises(SiteError, match=r"^routes/index\.py:3: .*rename GET to get"):
        load_site(site)


def test_non_callable_handler(make_site: MakeSite) -> None:
    site = make_site({"routes/index.py": "get = 3\n"})
    with pytest.raises(SiteError, match=r"^routes/index\.py: get must be a function"):
        load_site(site)


def test_site_folder_is_a_package_root(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "lib/util.py": "def shout(s):\n    return s.upper()\n",
            "routes/_helpers.py": "PREFIX = 'hi '\n",
            "routes/[name].py": """
                from lib.util import shout
                from routes._helpers import PREFIX

                async def get(event):
                    return {"body": PREFIX + shout(event.params["name"])}
            """,
            "routes/blog/index.py": """
                from .._helpers import PREFIX

                async def get(event):
                    return {"body": PREFIX + "blog"}
            """,
        }
    )
    assert client.get("/ada").text == "hi ADA"
    assert client.get("/blog").text == "hi blog"


def test_two_sites_with_the_same_module_names(make_site: MakeSite) -> None:
    one = make_site({"routes/_h.py": "V = 'one'\n", "routes/index.py": _USES_H})
    two = make_site({"routes/_h.py": "V = 'two'\n", "routes/index.py": _USES_H})
    with TestClient(one) as first:
        assert first.get("/").text == "one"
    with TestClient(two) as second:
        assert second.get("/").text == "two"
    assert str(one) not in sys.path and str(two) not in sys.path


def test_reload_sees_changed_files(make_site: MakeSite) -> None:
    site = make_site({"routes/_h.py": "V = 'old'\n", "routes/index.py": _USES_H})
    with TestClient(site) as client:
        assert client.get("/").text == "old"
    (site / "routes/_h.py").write_text("V = 'new'\n")
    with TestClient(site) as client:
        assert client.get("/").text == "new"


_USES_H = """
import routes._h

async def get(event):
    return {"body": routes._h.V}
"""


def test_matchers_py_is_used(client_for: ClientFactory) -> None:
    client = client_for(
        {
            "matchers.py": """
                import re

                def even(value):
                    return value.isdigit() and int(value) % 2 == 0
            """,
            "routes/n/[x=even].py": "async def get(event):\n    return {'body': 'even'}\n",
            "routes/n/[x].py": "async def get(event):\n    return {'body': 'other'}\n",
        }
    )
    assert client.get("/n/4").text == "even"
    assert client.get("/n/3").text == "other"


def test_bad_config_stops_loading(make_site: MakeSite) -> None:
    site = make_site({"kitpy.toml": "[server]\nport = 'x'\n", "routes/index.py": ""})
    with pytest.raises(ConfigError, match=r"^kitpy\.toml:2: \[server\] port"):
        TestClient(site)


def test_missing_site_folder(make_site: MakeSite) -> None:
    site = make_site({})
    with pytest.raises(SiteError, match="is not a folder"):
        load_site(site / "nope")
