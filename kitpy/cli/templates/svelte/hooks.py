"""Hooks: code that runs around every request (static files included)."""


async def handle(event, resolve):
    # Read or set event.locals here (a session, the current user...), then answer.
    response = await resolve(event)
    response.headers["x-content-type-options"] = "nosniff"
    return response


def handle_error(error, event):
    # The body of an unexpected error (a 500). `kitpy dev` shows the traceback instead.
    return {"message": "Something went wrong on our side."}
