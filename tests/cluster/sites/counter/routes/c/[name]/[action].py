"""GET /c/NAME/ACTION: ACTION (increment, slow, who, fired, arm) on counter NAME."""

from kitpy import error, json


async def get(event):
    counters = event.platform.env.counters
    stub = counters.get(counters.id_from_name(event.params["name"]))
    action = event.params["action"]
    if action == "increment":
        return json(await stub.increment())
    if action == "slow":
        return json(await stub.slow_increment(float(event.url.query.get("delay", "1"))))
    if action == "who":
        return json(await stub.who())
    if action == "fired":
        return json(await stub.fired())
    if action == "arm":
        return json({"node": await stub.arm(float(event.url.query.get("delay", "1")))})
    error(404, f"no action {action!r}")
