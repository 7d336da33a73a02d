# syntax=docker/dockerfile:1
# The yieldstream CLI. docker-compose.yml runs it as the collect, transform and sink roles.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
# Every dependency, DuckDB's extensions included, is a binary wheel: no compiler needed.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.11-slim
# A fixed uid, so a bind-mounted data directory can be chowned to it (10001:10001).
RUN useradd --create-home --uid 10001 --user-group yieldstream \
    && mkdir /data && chown yieldstream:yieldstream /data
COPY --from=build /opt/venv /opt/venv
# Unbuffered, so log lines reach `docker logs` as they are written; metrics (when
# YIELDSTREAM_METRICS_PORT is set) must bind all interfaces to be reachable from outside.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    YIELDSTREAM_DATA_DIR=/data \
    YIELDSTREAM_LOG_FORMAT=json \
    YIELDSTREAM_METRICS_HOST=0.0.0.0
USER yieldstream
WORKDIR /home/yieldstream
# Created after the chown above, so a new named volume here is writable by the user.
VOLUME /data
ENTRYPOINT ["yieldstream"]
CMD ["--help"]
