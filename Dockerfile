# The nodeloom image that compose.yaml runs as the server and as the workers.
FROM python:3.11-slim

# llama-cpp-python compiles llama.cpp when pip installs it (see the Makefile for the flags);
# PDF exports write their text in DejaVu Sans (fonts-dejavu-core).
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ cmake make fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY nodes nodes
COPY server server
COPY ui ui
COPY workflows workflows
COPY models/models.toml models/models.toml
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
RUN pip install --no-cache-dir .

RUN useradd --create-home nodeloom && mkdir -p workspace && chown -R nodeloom /app
USER nodeloom
EXPOSE 8080
CMD ["nodeloom", "serve", "--host", "0.0.0.0", "--port", "8080"]
