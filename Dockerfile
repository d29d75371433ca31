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

ENV MODELS_DIR=/models \
    HF_HOME=/hf_cache \
    HOST=0.0.0.0 \
    PORT=8000
RUN mkdir -p /models /hf_cache
VOLUME ["/models", "/hf_cache"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1

# The default model is written into /models on first start when it is missing.
CMD ["slm-api", "serve"]
