from kitpy import sequence


async def timing(event, resolve):
    event.locals["seen_by"] = ["timing"]
    response = await resolve(event)
    response.headers["x-site"] = "basic"
    return response


async def auth(event, resolve):
    event.locals["seen_by"].append("auth")
    event.locals["user"] = event.cookies.get("user")
    return await resolve(event)


handle = sequence(timing, auth)


def handle_error(error, event):
    return {"message": "basic site failed", "kind": type(error).__name__}
