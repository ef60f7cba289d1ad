# The salespulse service image: the Bento (service code + champion models) on Debian's Python 3.11.
#
# Build context: the folder build/, made by `salespulse serve build` and scripts/docker.sh (the build needs
# no network):
#   salespulse.bento the Bento exported from the BentoML store, champion models included
#   wheels/         wheels of every pinned dependency
#   constraints.txt the pins
#   warehouse/      a snapshot of the warehouse (may be empty: then mount one at /data)
#
#   docker build --network host -f Dockerfile -t salespulse build/
#   docker run --network host salespulse                                  # embedded snapshot
#   docker run --network host -e SALESPULSE_SERVICE_WORKERS=2 salespulse  # two worker processes
#   docker run --network host -v "$PWD/data:/data" salespulse             # your own warehouse
#
# The service runs as the unprivileged user salespulse (uid 10001), which owns /data and the BentoML store:
# a mounted warehouse folder must be writable by uid 10001 (DuckDB writes its WAL next to the file).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 \
    BENTOML_HOME=/home/bentoml \
    SALESPULSE_WAREHOUSE_PATH=/data/warehouse.duckdb \
    SALESPULSE_SERVICE_HOST=0.0.0.0 \
    SALESPULSE_SERVICE_PORT=3000 \
    SALESPULSE_SERVICE_WORKERS=1 \
    SALESPULSE_MODEL_SOURCE=bento

# LightGBM needs the GNU OpenMP runtime, which slim Python images leave out. Not version-pinned: the base
# is rebuilt from Debian stable, whose point releases replace these versions (security fixes included).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid, so that a mounted /data can be given to it on the host (chown 10001).
RUN groupadd --system --gid 10001 salespulse \
    && useradd --system --uid 10001 --gid salespulse --no-log-init --create-home \
        --home-dir /home/salespulse --shell /usr/sbin/nologin salespulse \
    && install -d -o salespulse -g salespulse /data "$BENTOML_HOME"

COPY constraints.txt /tmp/constraints.txt
COPY wheels /tmp/wheels
RUN python -m pip install --no-index --find-links /tmp/wheels -r /tmp/constraints.txt \
    && rm -rf /tmp/wheels

# Everything from here on runs as salespulse: the BentoML store and the warehouse belong to it, while the
# installed packages stay root's (the service cannot rewrite its own code). Numeric, so that a runtime can
# check it is not root without reading /etc/passwd (Kubernetes' runAsNonRoot).
USER 10001:10001
WORKDIR /home/salespulse
COPY --chown=salespulse:salespulse salespulse.bento /tmp/salespulse.bento
RUN bentoml import /tmp/salespulse.bento && rm /tmp/salespulse.bento
COPY --chown=salespulse:salespulse warehouse/ /data/

EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["sh", "-c", "curl -fs http://127.0.0.1:${SALESPULSE_SERVICE_PORT}/readyz || exit 1"]
# Host, port and worker count come from SALESPULSE_SERVICE_HOST / _PORT / _WORKERS (the service's settings),
# so no shell is needed to expand them. SALESPULSE_MODEL_SOURCE=bento: the image has no MLflow registry, it
# serves the models packed in the Bento.
CMD ["bentoml", "serve", "salespulse:latest"]
