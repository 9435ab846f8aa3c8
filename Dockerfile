# matrixrtc-auth container image: slim Python, non-root, healthcheck built in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/matrixrtc-auth
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin matrixrtc

USER matrixrtc
# The service listens on :8080 unless LIVEKIT_JWT_BIND (or the older LIVEKIT_JWT_PORT) says
# otherwise; neither is set here, so either may be passed to the container.
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["matrixrtc-auth", "healthcheck"]

ENTRYPOINT ["matrixrtc-auth"]
