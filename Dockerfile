# citewise's app image: built once (`docker compose build`), the same install `make install-app` runs on a
# machine, then `citewise serve` as the command. The database and the LLM are services of their own
# (docker-compose.yml); nothing is installed at container start.
FROM python:3.11-slim-bookworm

# a C/C++ toolchain and cmake build llama-cpp-python's wheel (the `llm` service runs it from this same image)
RUN apt-get update \
 && apt-get install -y --no-install-recommends make cmake build-essential git curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# torch's CPU build (the pinned 2.13.0); PyPI alone would pull the multi-GB CUDA one
ENV PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/citewise \
    PATH=/opt/citewise/bin:$PATH \
    CITEWISE_HOME=/data/citewise \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app
COPY pyproject.toml Makefile README.md ./
COPY .ci/ .ci/
COPY citewise/ citewise/
COPY core/ core/
COPY retrieval/ retrieval/
COPY prompts/ prompts/
COPY chat/ chat/
COPY evals/ evals/
COPY docs/ docs/
# x86-64-v3 (AVX2): runs on any recent x86-64 host, unlike a build tuned to the build machine
RUN make install-app VENV=/opt/citewise LLAMA_VARIANT=x86-64-v3 WHEELHOUSE=/tmp/wheels \
 && rm -rf /tmp/wheels \
 && useradd --system --create-home --home-dir /data citewise \
 && mkdir -p /data/citewise/models && chown -R citewise /data  # named volumes take these owners

USER citewise
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
  CMD curl -fsS http://127.0.0.1:8000/v1/health || exit 1
CMD ["citewise", "serve"]
