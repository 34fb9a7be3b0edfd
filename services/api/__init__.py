"""The readers' side: the HTTP API, the dashboard and the NATS queries, over one read model.

``app.py`` is the Litestar application, ``server.py`` serves it, ``auth.py`` guards it,
``dashboard/`` renders pages, ``nats_queries.py`` answers ``ledger.query.*``,
``read_model.py`` opens the projection for them all and ``tables.py`` writes CSV. It imports
``events``, ``projections``, ``replay`` and ``services.infra``.
"""
