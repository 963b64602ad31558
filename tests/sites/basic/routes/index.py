async def get(event):
    return {"body": {"seen_by": event.locals["seen_by"], "user": event.locals["user"]}}
