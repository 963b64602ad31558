"""``/``: the home page."""

from html import escape

from kitpy import html

PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>A kitpy site</title>
    <link rel="stylesheet" href="/style.css">
  </head>
  <body>
    <main>
      <h1>{greeting}, world!</h1>
      <p>Edit <code>routes/index.py</code> and reload.</p>
      <p>Try <a href="/api/hello/you">/api/hello/you</a>.</p>
    </main>
  </body>
</html>
"""


def get(event):
    greeting = event.platform.env.get("GREETING", "Hello")
    return html(PAGE.format(greeting=escape(greeting)))
