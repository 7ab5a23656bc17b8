# The stream worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
COPY plugins ./plugins
RUN pip install --no-cache-dir -c constraints.txt . ./plugins/clean ./plugins/ner ./plugins/dedup ./plugins/alerts ./plugins/feeds ./plugins/stories
USER nobody
ENV STREAM_DATA_DIR=/tmp/stream
ENTRYPOINT ["stream"]
EXPOSE 6066
CMD ["worker"]
