# syntax=docker/dockerfile:1
# rlm-mcp for Amazon Bedrock AgentCore Runtime (MCP protocol: stateless streamable HTTP on 0.0.0.0:8000/mcp),
# or any container host. Multi-arch: docker buildx build --platform linux/arm64,linux/amd64 -t rlm-mcp .
# See docs/deploy-agentcore.md.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: install rlm-mcp and its dependencies into a virtualenv ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG VENV=/opt/rlm-mcp
ARG EXTRAS=otel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY rlm_mcp ./rlm_mcp
COPY sandbox ./sandbox
RUN python -m venv "$VENV" && "$VENV/bin/pip" install "./[$EXTRAS]"

# -- runtime: the virtualenv on a clean slim image, run as an unprivileged user ---------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VENV=/opt/rlm-mcp
RUN groupadd --system --gid 10001 rlm \
    && useradd --system --uid 10001 --gid rlm --home-dir /home/rlm --create-home --shell /usr/sbin/nologin rlm \
    && install -d -o rlm -g rlm -m 0700 /home/rlm/data \
    && install -d -o rlm -g rlm -m 0755 /srv/corpora
COPY --from=build ${VENV} ${VENV}
ENV PATH="${VENV}/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RLM_DATA_DIR=/home/rlm/data \
    RLM_ALLOWED_ROOTS=/srv/corpora \
    RLM_LOG_FORMAT=json
USER 10001:10001
WORKDIR /home/rlm
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=4)"]
ENTRYPOINT ["rlm-mcp", "serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000", "--stateless"]
