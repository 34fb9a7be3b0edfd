"""Runnable processes and what they stand on, one room per job.

- ``infra/``: the NATS server (embedded, local cluster, deployment files), users, permissions,
  credentials, configuration and connections. Imports ``events`` and itself only.
- ``intake/``: field offices' commands in, events out. Imports ``events`` and ``infra``.
- ``projector/``: the live projections. Imports ``events``, ``projections`` and ``infra``.
- ``api/``: readers' HTTP API, dashboard and NATS queries. Imports ``events``, ``projections``,
  ``replay`` and ``infra``.
- ``client/``: the office SDK and the importer. Imports ``events`` and ``infra``.
- ``bootstrap.py``: the composition root that wires intake, the projector and the queries
  into ``ledger up``.
- ``errors.py``: the one table of errors every edge reads (code, HTTP status, exit code, page).
  Imports ``events``, ``projections``, ``replay`` and ``infra``; any room may import it.
- ``cli/``: the ``ledger`` command, the one room that may import every other; nothing imports
  it but the console script.

``tests/unit/test_import_rules.py`` holds every room to these lines.
"""
