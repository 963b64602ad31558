async def get(event):
    return {"body": "from the route"}
