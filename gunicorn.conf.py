"""gunicorn settings, read from the folder it starts in: `gunicorn -w 4 app:app` (README).

The app, the query model and the search index's in-memory state are loaded once in the master
before the workers are forked (and before the port opens), so every worker shares the model's
memory instead of holding a copy, and no request waits for any of it.
"""

preload_app = True


def on_starting(server):
    """In the master, after the app was loaded and before the port opens or any fork."""
    from portal.kb import queries as kb_queries
    from portal.search import semantic

    app = server.app.wsgi()
    semantic.start_loading(app)
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)  # compiled once here, not in each worker's requests
    semantic.wait_until_loaded(app)
    semantic.warm_up(app)  # the vector matrix and query caches, shared by the workers
    kb_queries.warm_up(app)  # an article page's statements compiled


def post_fork(server, worker):
    """A forked worker opens its own database connections and index files."""
    app = server.app.wsgi()
    engine = app.extensions.get("portal_db_engine")
    if engine is not None:
        engine.dispose(close=False)
    index_store = app.extensions.get("portal_search_store")
    if index_store is not None:
        index_store.reset()
    if server.cfg.preload_app:
        from portal.search import semantic

        # Before this worker accepts a request: its own searcher opened, a first question
        # answered (the first article page's related articles, the first search, are warm).
        semantic.warm_up(app)


def worker_exit(server, worker):
    """Article views still buffered in the worker are written before it goes."""
    from portal.kb.view_counts import flush_views

    with worker.wsgi.app_context():
        flush_views()


def post_worker_init(worker):
    """Without preload (e.g. --no-preload), each worker loads the model in the background."""
    if not worker.cfg.preload_app:
        from portal.search import semantic

        semantic.start_loading(worker.wsgi)
