# syntax=docker/dockerfile:1
# One image for every role; the command picks it:
#   qruntime api | scheduler | executor --backend NAME | migrate | up
# Build: docker compose up --build (or any builder: the context is the repository root).

# An exact Python and Debian release, so that rebuilding a commit gives the same base.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: a virtualenv holding qruntime and the tested versions of its dependencies ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/qruntime
ENV PATH=/opt/qruntime/bin:$PATH
WORKDIR /src

# Dependencies first, in a layer of their own, so that a code change does not reinstall qiskit.
# constraints.txt pins the versions `make test` ran against; pyproject.toml only has lower bounds.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip install -c constraints.txt -r requirements.txt

COPY README.md ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-deps -c constraints.txt . \
 && qruntime --help > /dev/null

# ---- runtime: the virtualenv on a clean slim base, run by an unprivileged user -----------------
FROM ${PYTHON_IMAGE} AS runtime

# tini as PID 1 forwards SIGTERM to qruntime only (an executor then stops consuming and finishes
# its job while the simulator child keeps running) and reaps any orphaned child.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid, so Kubernetes can verify runAsNonRoot without resolving names.
RUN groupadd --system --gid 10001 qruntime \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/qruntime --create-home \
        --shell /usr/sbin/nologin qruntime

COPY --from=build /opt/qruntime /opt/qruntime

# Bytecode was compiled at install time; nothing needs to write below / at run time, so the root
# filesystem can be mounted read-only (caches go to /tmp, the one writable place).
ENV PATH=/opt/qruntime/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/qruntime \
    XDG_CACHE_HOME=/tmp/.cache \
    QRUNTIME_API_HOST=0.0.0.0 \
    QRUNTIME_API_PORT=8000

WORKDIR /home/qruntime
USER 10001:10001

# 8000: the api (QRUNTIME_API_PORT). 9000: /healthz and /metrics of scheduler and executors
# (QRUNTIME_HEALTH_PORT, when set).
EXPOSE 8000 9000

# Healthy when /healthz answers on the health port (scheduler, executor) or the api port (api).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request\nports = [os.environ.get('QRUNTIME_HEALTH_PORT'), os.environ.get('QRUNTIME_API_PORT', '8000')]\nfor port in filter(None, ports):\n    try:\n        urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=3)\n        sys.exit(0)\n    except OSError:\n        pass\nsys.exit(1)"]

ENTRYPOINT ["tini", "--", "qruntime"]
CMD ["api"]
