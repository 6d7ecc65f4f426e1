"""`charrnn serve`: an OpenAI-compatible HTTP server with continuous batching.

    from charrnn.serve import app
    asgi = app("charrnn-runs/shakespeare-...")      # a Starlette app: uvicorn.run(asgi)

Needs the optional extra: pip install "charrnn-fast[serve]" (uvicorn, Starlette).
    server.py     the routes;  protocol.py  request checks, response and error shapes
    batcher.py    the scheduler thread over charrnn._batch;  models.py  loading, --watch
    playground.html   the page at /
"""


def app(models, **options):
    """The ASGI app (see charrnn.serve.server.app for the options)."""
    try:
        from charrnn.serve.server import app as make
    except ImportError as e:
        from charrnn.errors import ConfigError
        raise ConfigError(f"charrnn serve needs Starlette and uvicorn ({e.name} is missing): "
                          'pip install "charrnn-fast[serve]"') from None
    return make(models, **options)
