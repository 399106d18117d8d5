# One CPU image for worker, scorer, trainer and the one-shots (`streamrec <subcommand>`); GPU scorers: Dockerfile.gpu.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
# the CPU build of torch from its own index: an unpinned index pulls the multi-GB CUDA build
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY streamrec streamrec
COPY stream stream
COPY features features
COPY search search
COPY serving serving
COPY protos protos
COPY training training
COPY loadtest loadtest
COPY bench bench
COPY observe observe
# [s3]: s3fs for the remote model registry (streamrec/registry_sync.py)
RUN pip install ".[s3]"
# not root; the directories named volumes mount over are created here so new volumes inherit the owner
RUN useradd --uid 10001 --create-home streamrec \
    && mkdir -p /models /feast /data /var/lib/streamrec/registry \
    && chown -R streamrec /models /feast /data /var/lib/streamrec
USER streamrec
ENTRYPOINT ["streamrec"]
