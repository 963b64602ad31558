"""``/api/hello/<name>``: a JSON endpoint.

``get`` returns a dict, answered as JSON; ``post`` reads a JSON body.
"""

from kitpy import error


async def get(event):
    name = event.params["name"]
    return {"body": {"hello": name}}


async def post(event):
    data = await event.request.json()
    if not isinstance(data, dict) or not isinstance(data.get("greeting"), str):
        error(400, 'expected {"greeting": "..."}')
    return {"status": 201, "body": {"message": f"{data['greeting']}, {event.params['name']}!"}}
