# The stream-mlops services (engine, topic setup, and later the retrainer) for
# docker-compose.yml. The Kafka broker itself is the official apache/kafka image.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream_mlops ./stream_mlops
COPY consumers ./consumers
COPY producers ./producers
RUN pip install --no-cache-dir . && useradd --create-home --uid 10001 app

USER app
ENTRYPOINT ["stream-mlops"]
CMD ["--help"]
