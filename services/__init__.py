"""Runnable processes and what they stand on, one room per job.

- ``infra/``: the NATS server (embedded, local cluster, deployment files), users, permissions,
  credentials, configuration and connections. Imports ``events`` and itself only.
- ``intake/``: field offices' commands in, events out. Imports ``events`` and ``infra``.
- ``projector/``: the live projections. Imports ``events``, ``projections`` and ``infra``.
- ``api/``: readers' HTTP API, dashboard and NATS queries. Imports ``events``, ``projections``,
  ``replay`` and ``infra``.
- ``client/``: the office SDK and the importer. Imports ``events`` and ``infra``.
- ``drafts/``: draft report sections from the figures, every figure footnoted to its events.
  Imports ``events`` and ``projections``; the API's dashboard and the CLI serve them.
- ``iati/``: the activities as IATI 2.03 XML, checked against the vendored schema, codelists
  and ruleset, and IATI files in. Imports ``events`` and ``projections``; its importer also
  ``client``, whose ``ledger import`` machinery it reuses. The API and the CLI serve it.
- ``bootstrap.py``: the composition root that wires intake, the projector and the queries
  into ``ledger up``.
- ``errors.py``: the one table of errors every edge reads (code, HTTP status, exit code, page).
  Imports ``events``, ``projections``, ``replay`` and ``infra``; any room may import it.
- ``cli/``: the ``ledger`` command, the one room that may import every other; nothing imports
  it but the console script.

``tests/unit/test_import_rules.py`` holds every room to these lines.
"""
