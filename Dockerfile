# The salespulse service image: the Bento (service code + champion models) on Debian's Python 3.11.
#
# Build context, made by `salespulse serve build` and scripts/docker.sh (no network needed in the build):
#   build/bento/          the Bento exported from the BentoML store, models included
#   build/wheels/         wheels of every pinned dependency (constraints.txt)
#   build/warehouse/      a snapshot of the warehouse (may be empty: then mount one at /data)
#
#   docker build --network host -t salespulse .
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

COPY constraints.txt /tmp/constraints.txt
COPY build/wheels /tmp/wheels
RUN python -m pip install --no-index --find-links /tmp/wheels -r /tmp/constraints.txt \
    && rm -rf /tmp/wheels

COPY build/bento /home/bentoml/bento
COPY build/warehouse/ /data/

WORKDIR /home/bentoml/bento/src
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD curl -fs "http://127.0.0.1:${SALESPULSE_SERVICE_PORT}/readyz" || exit 1
CMD ["sh", "-c", "exec bentoml serve /home/bentoml/bento --host \"$SALESPULSE_SERVICE_HOST\" --port \"$SALESPULSE_SERVICE_PORT\""]
