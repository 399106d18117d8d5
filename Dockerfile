# One image for worker, scorer and trainer (CPU). GPU scorers: build with --build-arg EXTRA=gpu on a CUDA base.
FROM python:3.11-slim
ARG EXTRA=""
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY streamrec streamrec
COPY stream stream
COPY features features
COPY serving serving
COPY protos protos
COPY training training
COPY loadtest loadtest
COPY bench bench
RUN pip install ".${EXTRA:+[$EXTRA]}" && if [ "$EXTRA" = "gpu" ]; then pip uninstall -y onnxruntime; fi
ENTRYPOINT ["streamrec"]
