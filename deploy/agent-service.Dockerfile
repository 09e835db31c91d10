# Agent service image. Build from the repository root: docker build -f deploy/agent-service.Dockerfile .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY shared/ /src/shared/
COPY agent-service/ /src/agent-service/
COPY prompts/ /app/prompts/
COPY business.toml /app/business.toml
COPY knowledge_base/ /app/knowledge_base/
RUN pip install --no-cache-dir /src/shared /src/agent-service && useradd --create-home parley && mkdir -p /app/data && chown parley /app/data
USER parley
ENV HTTP_HOST=0.0.0.0 AGENT_HTTP_PORT=8081 APP_ENV=production
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/health', timeout=4).status == 200 else 1)"
CMD ["python", "-m", "agent_service"]
