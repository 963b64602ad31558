async def get(event):
    counters = event.platform.env.counters
    stub = counters.get(counters.id_from_name(event.params["name"]))
    return await stub.fetch("/", event.request)
