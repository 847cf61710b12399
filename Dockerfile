# The Driftline image that docker-compose.yml runs as worker and trainer.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY driftline ./driftline
COPY streams ./streams
COPY consumers ./consumers
COPY schemas ./schemas
RUN pip install --no-cache-dir -c requirements.lock .
ENTRYPOINT ["driftline"]
