# One image per worker kind, chosen by build arguments (docker-compose.yml sets them):
#   EXTRAS=cpu,s3         cpu worker (TensorFlow to export TF models, ONNX Runtime)
#   EXTRAS=gpu,tf,s3      gpu worker (ONNX Runtime's CUDA provider; add tensorrt for TensorRT engines;
#                         run with an NVIDIA device reservation)
#   EXTRAS=arm,s3         arm worker (build for linux/arm64)
#   EXTRAS=fpga,s3        fpga worker (AMD Quark, CPU torch from TORCH_INDEX)
#   EXTRAS=monitor,s3     Flower
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ARG EXTRAS=cpu,s3
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin farm

WORKDIR /opt/farm
COPY pyproject.toml README.md ./
COPY farm farm
COPY queues queues
COPY workers workers
COPY db db
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" ".[${EXTRAS}]"

# The worker writes only its home (caches, scratch); models and variants go to the object store.
USER farm
ENV FARM_HOME=/home/farm/.farm \
    PYTHONUNBUFFERED=1 \
    REMAP_SIGTERM=SIGQUIT
ENTRYPOINT ["farm"]
CMD ["worker", "--hw", "cpu"]
