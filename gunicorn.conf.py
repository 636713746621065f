"""gunicorn settings, read from the folder it starts in: `gunicorn -w 4 app:app` (README).

The app and the search index's in-memory state are loaded once in the master before the
workers are forked (and before the port opens), and the query model runs in one process of
its own, the host's query-model service (portal/search/model_service.py), which the master
starts and waits for before the port opens: no request waits for the model, and no web worker
holds onnxruntime or the model's memory.
"""

import os

preload_app = True
# Read by the app's configuration (PORTAL_*), before gunicorn loads it and in every worker.
# `PORTAL_SEMANTIC_MODEL_SERVICE=false gunicorn …` loads the model in the master instead
# (README, "Workers share the model": more search throughput, more memory per worker).
os.environ.setdefault("PORTAL_SEMANTIC_MODEL_SERVICE", "true")


def _one_malloc_arena() -> None:
    """glibc gives each thread that allocates its own heap ("arena", up to 8 per core): the
    app's few background threads (the model loader in the master, the view-count and index
    threads of each worker) each kept a mostly empty heap of their own, resident in every
    worker. A sync worker runs one request at a time, so one arena costs no contention.
    Measured after each page and 300 searches: RSS per worker 175 → 155 and 176 → 169 MB.
    Set here, before the app starts any thread; the forked workers inherit it."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "mallopt"):  # glibc
        libc.mallopt(_M_ARENA_MAX, 1)


_M_ARENA_MAX = -8  # glibc malloc.h
_one_malloc_arena()


def _one_blas_thread() -> None:
    """OpenBLAS (numpy's) on one thread in the server's processes, set before numpy loads.
    Its pool does not survive the fork: a worker's first matrix product (the first article
    page's related articles, the first search) started a new pool thread, which then spun
    beside the request (`embeddings.single_threaded_blas` limits each product to one thread,
    not the pool's start): measured in a forked worker, the first article page took 85 ms
    (55 ms of CPU, 30 of them the spinning thread's) against 41 ms (27 ms CPU) without it.
    A request's products are small; bulk embedding runs in the job workers, which keep it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


_one_blas_thread()


def on_starting(server):
    """In the master, after the app was loaded and before the port opens or any fork."""
    from portal import agent
    from portal.kb import queries as kb_queries
    from portal.search import model_service, semantic

    app = server.app.wsgi()
    # The service stops with this process, whichever process (re)starts it; workers of a
    # --no-preload server read it from the environment.
    os.environ["PORTAL_SEMANTIC_MODEL_SERVICE_OWNER"] = str(os.getpid())
    app.config["SEMANTIC_MODEL_SERVICE_OWNER"] = os.getpid()
    semantic.start_loading(app)
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)  # compiled once here, not in each worker's requests
    semantic.wait_until_loaded(app, timeout=_MODEL_START_SECONDS)
    semantic.warm_up(app)  # the vector matrix and query caches, shared by the workers
    kb_queries.warm_up(app)  # an article page's statements compiled
    agent.warm_up(app)  # the reports', the queue's and the SLA sweep's statements compiled
    model_service.disconnect_all()  # each worker opens its own connection
    _close_database_before_fork(app)
    _freeze_loaded_objects()
    _return_freed_memory()  # after the last collection: what it freed goes back too


# The first start on a host also prepares the model (a few seconds); past this the port opens
# anyway and searches rank by keywords until the service answers.
_MODEL_START_SECONDS = 120.0


def _close_database_before_fork(app) -> None:
    """No SQLite connection may cross the fork (SQLite's own rule): a child inherits the
    process's lock table, and one copied while the master was writing believes the write lock
    is held for ever ("database is locked" in that worker). So a search-index rebuild the
    warm-up started (index missing) finishes first, and the master's connections are closed."""
    index_store = app.extensions.get("portal_search_store")
    rebuild = getattr(index_store, "rebuild_thread", None)
    if rebuild is not None:
        rebuild.join()
    engine = app.extensions.get("portal_db_engine")
    if engine is not None:
        engine.dispose()


def _return_freed_memory() -> None:
    """Give the heap that loading freed (the model file read whole, conversion copies) back
    to the system before forking: otherwise each worker inherits it as resident memory."""
    import ctypes
    import ctypes.util

    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "malloc_trim"):  # glibc
        libc.malloc_trim(0)


def _freeze_loaded_objects() -> None:
    """Everything loaded so far (the app, the model, the index's arrays: some 160,000
    objects) lives as long as the process: moved out of the garbage collector's reach, a
    worker's full collection no longer walks it (150-270 ms each, about every 300 requests,
    and a steady share of every request's CPU), and walking it no longer writes to the pages
    the workers share with the master (copy-on-write)."""
    import gc

    gc.collect()
    gc.freeze()


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
        from portal.extensions import db
        from portal.search import semantic

        # Before this worker accepts a request: its own searcher opened, a first question
        # answered (the first article page's related articles, the first search, are warm).
        # Reads only, in a deferred transaction: no write lock for the other workers to wait on.
        with db.deferred():
            semantic.warm_up(app)


def worker_exit(server, worker):
    """Article views and suggestion events still buffered in the worker are written before
    it goes (portal/write_buffer.py).

    Then a worker that inherited onnxruntime (PORTAL_SEMANTIC_MODEL_SERVICE=false: the query
    model loaded before the fork) ends at once: onnxruntime's runtime cannot be torn down in a
    forked child (the interpreter's exit hangs, or aborts with std::system_error)."""
    import logging
    import sys

    from portal import write_buffer

    with worker.wsgi.app_context():
        write_buffer.flush_all()
    if "onnxruntime" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if worker.booted else server.WORKER_BOOT_ERROR)


def post_worker_init(worker):
    """Without preload (e.g. --no-preload), each worker makes sure the service runs."""
    if not worker.cfg.preload_app:
        from portal.search import semantic

        semantic.start_loading(worker.wsgi)
