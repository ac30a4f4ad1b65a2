# signing-proxy as a sidecar image: build wheels in one stage, install only those wheels in a
# clean python:slim stage, run as a fixed non-root uid with the proxy itself as PID 1.
#
#   docker build -t signing-proxy .
#   docker run -d --name signing-proxy --network container:myapp --stop-timeout 40 \
#       --user "$(id -u):$(id -g)" -v ~/.aws:/home/proxy/.aws:ro -e AWS_PROFILE=dev \
#       -e UPSTREAM_URL=https://... -e FUNCTION_URL=https://... signing-proxy
#
# --network container:myapp shares the app's network namespace, so the app calls
# http://127.0.0.1:8080. --stop-timeout outlasts the proxy's 30 s shutdown grace (docker stop
# otherwise sends SIGKILL after 10 s). --user is for a Linux ~/.aws whose files are mode 600.
#
# RUN --mount needs BuildKit: the default builder since Docker 23 (on Docker 20.10, set
# DOCKER_BUILDKIT=1). No `# syntax=` line on purpose: the built-in frontend handles --mount,
# and a syntax line makes BuildKit pull a frontend image, which fails without a registry.

# --- stage 1: wheels for the project and every runtime dependency ---------------------------
FROM python:3.11-slim AS build
WORKDIR /src
# Only what the build reads: the metadata (pyproject names README.md as the long description)
# and the package. Tests, benchmarks and the local virtualenv never reach the image.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# aiohttp, uvloop, PyYAML and prometheus-client publish manylinux wheels, so no compiler is
# needed here either; pip only builds the project's own pure-Python wheel.
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

# --- stage 2: the runtime image -------------------------------------------------------------
FROM python:3.11-slim

# Unbuffered: log lines reach `docker logs` as they are written, not when a buffer fills.
# No .pyc files: the root filesystem may be read-only (Kubernetes readOnlyRootFilesystem).
# HOME is fixed so botocore finds ~/.aws at /home/proxy/.aws whatever uid the container runs as
# (`docker run --user $(id -u)` to read a host ~/.aws whose files are mode 600).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/proxy \
    SIGNING_PROXY_CONFIG=/etc/signing-proxy/config.yaml

# The wheels are bind-mounted from the build stage instead of copied, so they never become a
# layer of this image; --no-index makes pip install exactly those wheels and fetch nothing.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --no-index --find-links=/wheels signing-proxy

# A fixed uid/gid (10001) so Kubernetes runAsUser, fsGroup and file ownership on mounted
# volumes can be written down in advance. The account is called signing-proxy because Debian's
# base image already has a system user and group named proxy (uid 13), so `groupadd proxy`
# would fail the build. The empty ~/.aws is where users mount their own (read-only): shared
# config and credentials files, the SSO token cache ~/.aws/sso/cache and the CLI's
# ~/.aws/cli/cache all resolve under it. HOME itself is world-traversable so that the mount
# stays reachable when the container runs as another uid (--user).
RUN groupadd --gid 10001 signing-proxy \
    && useradd --uid 10001 --gid 10001 --home-dir /home/proxy --create-home \
        --shell /usr/sbin/nologin signing-proxy \
    && chmod 0755 /home/proxy \
    && install -d -o 10001 -g 10001 -m 0700 /home/proxy/.aws

# Owned by root: the proxy (uid 10001) can read its config but never rewrite it.
COPY deploy/docker/config.yaml /etc/signing-proxy/config.yaml

WORKDIR /home/proxy
# 8080: the proxy (loopback by default: the app shares the network namespace).
# 9901: the admin listener with /healthz, /readyz, /metrics and POST /reload.
EXPOSE 8080 9901
USER 10001:10001

# The image has no curl; the proxy's own `health` subcommand asks the admin port's /healthz
# (http://127.0.0.1:9901/healthz) and gives up after 3 s, well inside --timeout.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["signing-proxy", "health"]

# Exec form throughout, never shell form: the shell form wraps the command in `/bin/sh -c`, and
# a shell as PID 1 need not pass SIGTERM on (nor exit on it), so `docker stop` would wait out
# its timeout and then SIGKILL the proxy mid-request. In exec form the proxy is PID 1 and receives SIGTERM
# itself: it stops accepting, drains requests in flight (up to its shutdown grace) and exits 0.
# PID 1 gets no default signal actions from the kernel, which is fine because the proxy
# installs handlers for SIGTERM, SIGINT and SIGHUP (reload).
STOPSIGNAL SIGTERM
ENTRYPOINT ["signing-proxy"]
CMD ["serve"]
