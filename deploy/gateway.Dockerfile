# Gateway image. Build from the repository root: docker build -f deploy/gateway.Dockerfile .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY shared/ /src/shared/
COPY gateway/ /src/gateway/
RUN pip install --no-cache-dir /src/shared /src/gateway && useradd --create-home parley && mkdir -p /app/data/media && chown -R parley /app/data
USER parley
ENV HTTP_HOST=0.0.0.0 GATEWAY_HTTP_PORT=8080 APP_ENV=production
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4).status == 200 else 1)"
CMD ["python", "-m", "gateway"]
