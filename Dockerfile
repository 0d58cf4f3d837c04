# syncd: the daemon, the fake Entra directory and the migrations, in one image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SYNCD_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY syncd ./syncd
RUN pip install -e . \
    && useradd --system --uid 10001 --home-dir /data syncd \
    && mkdir -p /data \
    && chown syncd /data

USER syncd
WORKDIR /data
# 8080: the daemon's HTTP endpoint; 8000: the fake Graph server in the compose demo.
EXPOSE 8080 8000
STOPSIGNAL SIGTERM
CMD ["syncd", "run"]
