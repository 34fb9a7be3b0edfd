"""Infrastructure: the NATS server and who may talk to it.

The embedded server and the local cluster, the files a deployment needs, the ledger's NATS
users, their permissions and credentials, the offices' signing keys on disk, settings, the data
directory's runtime file and lock, connections, permission violations and the reply guard,
the process's Prometheus instruments and its log formats.
It imports ``events`` and itself only: nothing here knows intake, the projector, the API or
the CLI.
"""
