async def get(event):
    raise RuntimeError("boom")
