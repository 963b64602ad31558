async def get(event):
    return {"status": 404, "body": "not a word"}
