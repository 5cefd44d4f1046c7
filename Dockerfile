# syntax=docker/dockerfile:1
#
# The pseudostream worker image. Build from the repository root:
#
#     docker build -t pseudostream:0.1.0 .
#
# The keyring and the master key are never part of the image (nor of the build context, see
# .dockerignore): they are mounted at run time as secrets under /run/secrets, where the
# settings below point (deploy/compose.yaml, deploy/README.md).
#
# Base image: pinned to an exact patch tag. A digest pin (`python:3.11.14-slim-bookworm@sha256:...`)
# is stronger, but no digest could be looked up where this file was written (no registry
# access, no Docker engine). Add it when building:
#     docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and use the same reference in both stages.

# ---- builder: the project and every dependency as wheels ----------------------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The pipeline's hot modules compiled with mypyc (setup.py): a C compiler here, in the
# builder only; the runtime stage gets the compiled wheel. Python's headers come with the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY processor ./processor
COPY schemas ./schemas
COPY keys ./keys
RUN PSEUDOSTREAM_COMPILE=1 pip wheel --wheel-dir /wheels .

# ---- runtime: a venv with the wheels, a fixed non-root user -------------------------------
FROM python:3.11.14-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Fixed UID/GID so that mounted secrets and volumes can be given to exactly this user.
RUN groupadd --system --gid 10001 pseudostream \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/pseudostream \
        --no-create-home --shell /usr/sbin/nologin pseudostream \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/pseudostream

# Install offline from the builder's wheels (bind-mounted: the wheels stay out of the layers).
# A build that fell back to plain Python (setup.py) fails here rather than ship a slower image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/pseudostream \
    && /opt/pseudostream/bin/pip install --no-index --find-links /wheels /wheels/pseudostream-*.whl \
    && /opt/pseudostream/bin/pseudostream --version | grep -F "(pipeline: compiled)"

# Settings (docs/worker.md): secrets are files under /run/secrets, never values in the image.
# The HEALTHCHECK needs the faust web server, so web_port must stay non-zero.
ENV PATH=/opt/pseudostream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PSEUDOSTREAM_KEYRING=/run/secrets/keyring \
    PSEUDOSTREAM_MASTER_KEY_FILE=/run/secrets/master_key \
    PSEUDOSTREAM_WEB_PORT=6066 \
    PSEUDOSTREAM_DATA_DIR=/var/lib/pseudostream/data

WORKDIR /var/lib/pseudostream
USER 10001:10001

# No curl in a slim image: the image's own Python fetches the worker's health URL,
# http://127.0.0.1:${PSEUDOSTREAM_WEB_PORT}/health (the faust web server binds 127.0.0.1
# inside the container). Exec form, no shell: a non-2xx answer or none raises, exit status 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health' % os.environ['PSEUDOSTREAM_WEB_PORT'], timeout=4)"]

# faust stops cleanly on SIGTERM (in-flight batches finish, offsets are committed).
STOPSIGNAL SIGTERM
ENTRYPOINT ["pseudostream"]
CMD ["worker"]
