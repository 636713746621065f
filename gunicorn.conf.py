"""gunicorn settings, read from the folder it starts in: `gunicorn -w 4 app:app` (README).

The app, and the query model with it, is loaded once in the master before the workers are
forked, so every worker shares the model's memory instead of holding a copy, and no request
ever waits for it to load.
"""

preload_app = True


def on_starting(server):
    """In the master, after the app was loaded and before any worker is forked."""
    from portal.search import semantic

    app = server.app.wsgi()
    semantic.start_loading(app)
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)  # compiled once here, not in each worker's requests
    semantic.wait_until_loaded(app)


def post_fork(server, worker):
    """A forked worker opens its own database connections."""
    engine = server.app.wsgi().extensions.get("portal_db_engine")
    if engine is not None:
        engine.dispose(close=False)


def worker_exit(server, worker):
    """Article views still buffered in the worker are written before it goes."""
    from portal.kb.view_counts import flush_views

    with worker.wsgi.app_context():
        flush_views()


def post_worker_init(worker):
    """Before taking requests, each worker opens the search index and vectors (its own file
    handles and connections); without preload (e.g. --no-preload) it loads the model in the
    background instead."""
    from portal.search import semantic

    if worker.cfg.preload_app:
        semantic.warm_up(worker.wsgi)
    else:
        semantic.start_loading(worker.wsgi)
