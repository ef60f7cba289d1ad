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
#   docker run --network host -v "$PWD/data:/data" salespulse             # your own warehouse
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    OMP_NUM_THREADS=1 \
    BENTOML_HOME=/home/bentoml \
    SALESPULSE_WAREHOUSE_PATH=/data/warehouse.duckdb \
    SALESPULSE_SERVICE_HOST=0.0.0.0 \
    SALESPULSE_SERVICE_PORT=3000

# LightGBM needs the GNU OpenMP runtime, which slim Python images leave out.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

COPY constraints.txt /tmp/constraints.txt
COPY wheels /tmp/wheels
RUN python -m pip install --no-index --find-links /tmp/wheels -r /tmp/constraints.txt \
    && rm -rf /tmp/wheels

COPY salespulse.bento /tmp/salespulse.bento
RUN bentoml import /tmp/salespulse.bento && rm /tmp/salespulse.bento
COPY warehouse/ /data/

WORKDIR /home/bentoml
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD curl -fs "http://127.0.0.1:${SALESPULSE_SERVICE_PORT}/readyz" || exit 1
CMD ["sh", "-c", "exec bentoml serve salespulse:latest --host \"$SALESPULSE_SERVICE_HOST\" --port \"$SALESPULSE_SERVICE_PORT\""]
