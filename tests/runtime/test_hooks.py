"""handle / resolve, sequence(), handle_error, and HTTPError and 500 bodies."""

from __future__ import annotations

import logging

import pytest

from kitpy import sequence

from .conftest import ClientFactory

ROUTES = {
    "routes/index.py": """
        async def get(event):
            return {"body": {"who": event.locals.get("user"), "order": event.locals.get("order")}}
    """,
    "routes/boom.py": """
        async def get(event):
            raise ValueError("secret detail")
    """,
    "routes/teapot.py": """
        from kitpy import error

        async def get(event):
            error(418, "short and stout")
    """,
    "static/file.txt": "static!",
}


def test_handle_sets_locals_and_decorates_responses(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            async def handle(event, resolve):
                event.locals["user"] = event.request.headers.get("x-user")
                response = await resolve(event)
                response.headers["x-hooked"] = event.route or "none"
                return response
            """,
        }
    )
    response = client.get("/", headers={"x-user": "ada"})
    assert response.json()["who"] == "ada"
    assert response.headers["x-hooked"] == "/"
    assert client.get("/missing").headers["x-hooked"] == "none"


def test_hooks_run_for_static_files(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            async def handle(event, resolve):
                response = await resolve(event)
                response.headers["x-hooked"] = "1"
                return response
            """,
        }
    )
    response = client.get("/file.txt")
    assert response.text == "static!" and response.headers["x-hooked"] == "1"


def test_handle_can_answer_without_resolve(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            from kitpy import text

            async def handle(event, resolve):
                if event.url.path == "/blocked":
                    return text("no", 403)
                return await resolve(event)
            """,
        }
    )
    assert client.get("/blocked").status_code == 403
    assert client.get("/").status_code == 200


def test_sequence_runs_in_order(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            from kitpy import sequence

            async def first(event, resolve):
                event.locals["order"] = ["first"]
                response = await resolve(event)
                response.headers.add("x-after", "first")
                return response

            async def second(event, resolve):
                event.locals["order"].append("second")
                response = await resolve(event)
                response.headers.add("x-after", "second")
                return response

            handle = sequence(first, second)
            """,
        }
    )
    response = client.get("/")
    assert response.json()["order"] == ["first", "second"]
    assert response.headers.get_all("x-after") == ["second", "first"]


def test_sequence_rejects_non_functions() -> None:
    with pytest.raises(TypeError, match="argument 2 is int"):
        sequence(lambda e, r: r(e), 3)  # type: ignore[arg-type]


def test_http_error_text_or_json(client_for: ClientFactory) -> None:
    client = client_for(ROUTES)
    plain = client.get("/teapot")
    assert (plain.status_code, plain.text) == (418, "short and stout")
    assert plain.headers["content-type"] == "text/plain; charset=utf-8"
    as_json = client.get("/teapot", headers={"accept": "application/json"})
    assert as_json.json() == {"message": "short and stout"}
    browser = client.get("/teapot", headers={"accept": "text/html,application/json;q=0.9"})
    assert browser.text == "short and stout"


def test_http_error_raised_in_a_hook(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            from kitpy import error

            async def handle(event, resolve):
                error(401, "log in first")
            """,
        }
    )
    response = client.get("/", headers={"accept": "application/json"})
    assert (response.status_code, response.json()) == (401, {"message": "log in first"})


def test_serve_mode_500_never_leaks(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(ROUTES)
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        response = client.get("/boom")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    as_json = client.get("/boom", headers={"accept": "application/json"})
    assert as_json.json() == {"message": "Internal Server Error"}
    assert "secret detail" not in as_json.text
    assert any("routes/boom.py" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


def test_dev_mode_500_shows_the_traceback(client_for: ClientFactory) -> None:
    client = client_for(ROUTES, dev=True)
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Traceback" in response.text and "ValueError: secret detail" in response.text
    page = client.get("/boom", headers={"accept": "text/html"})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "ValueError: secret detail" in page.text
    as_json = client.get("/boom", headers={"accept": "application/json"}).json()
    assert as_json["message"] == "ValueError: secret detail"
    assert "routes/boom.py" in as_json["traceback"]


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_handle_error_shapes_the_500(client_for: ClientFactory, kind: str) -> None:
    prefix = "async " if kind == "async" else ""
    client = client_for(
        {
            **ROUTES,
            "hooks.py": f"""
            {prefix}def handle_error(error, event):
                if event.url.query.get("as") == "dict":
                    return {{"message": "oops", "kind": type(error).__name__}}
                if event.url.query.get("as") == "none":
                    return None
                return "something broke"
            """,
        }
    )
    assert client.get("/boom").text == "something broke"
    response = client.get("/boom?as=dict")
    assert (response.status_code, response.json()) == (
        500,
        {"message": "oops", "kind": "ValueError"},
    )
    assert client.get("/boom?as=none").text == "Internal Server Error"
    assert client.get("/teapot").status_code == 418  # HTTPError is not unexpected


def test_handle_error_failing_falls_back(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(
        {**ROUTES, "hooks.py": "def handle_error(error, event):\n    raise RuntimeError('x')\n"}
    )
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        assert client.get("/boom").text == "Internal Server Error"
    assert any("handle_error() raised" in r.getMessage() for r in caplog.records)


def test_exception_in_handle_is_500(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": "async def handle(event, resolve):\n    raise KeyError('k')\n",
        }
    )
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        response = client.get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert any("hooks.py: handle() raised" in r.getMessage() for r in caplog.records)


def test_handle_returning_junk_is_500(
    client_for: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(
        {**ROUTES, "hooks.py": "async def handle(event, resolve):\n    return 'nope'\n"}
    )
    with caplog.at_level(logging.ERROR, logger="kitpy"):
        assert client.get("/").status_code == 500
    assert any(r.getMessage().startswith("hooks.py: handle()") for r in caplog.records)


def test_handle_sees_500_from_resolve(client_for: ClientFactory) -> None:
    client = client_for(
        {
            **ROUTES,
            "hooks.py": """
            async def handle(event, resolve):
                response = await resolve(event)
                response.headers["x-status-seen"] = str(response.status)
                return response
            """,
        }
    )
    assert client.get("/boom").headers["x-status-seen"] == "500"


def test_dev_mode_shows_the_traceback_beside_handle_error(client_for: ClientFactory) -> None:
    client = client_for(
        {**ROUTES, "hooks.py": "def handle_error(error, event):\n    return {'id': 7}\n"},
        dev=True,
    )
    body = client.get("/boom", headers={"accept": "application/json"}).json()
    assert body["message"] == "ValueError: secret detail"
    assert body["handle_error"] == {"id": 7}
    assert "Traceback" in body["traceback"]
    page = client.get("/boom").text
    assert "ValueError: secret detail" in page and 'handle_error() returned: {"id": 7}' in page
