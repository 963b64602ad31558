async def get(event):
    return {"body": "blog index"}
