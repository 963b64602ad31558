def get(event):
    return {"body": {"route": event.route}}


def post(event):
    return {"status": 201}
