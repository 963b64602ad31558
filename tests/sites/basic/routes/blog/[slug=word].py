from routes._helpers import title


async def get(event):
    return {"body": title(event.params["slug"])}
