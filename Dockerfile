# The image cluster/rayjob.yaml names: ts3ray on Ray's own image (KubeRay runs `ray start`
# in it; the ray version must equal rayVersion in the manifest).
#
#   docker build -t ts3ray:0.1.0 .                                   # CPU
#   docker build -t ts3ray:0.1.0-cuda --build-arg VARIANT=cuda .     # CUDA (GPU workers)
#
# VARIANT picks the base image and the torch wheels: cpu -> rayproject/ray:<ray>-py311-cpu and
# torch's CPU index; cuda -> rayproject/ray:<ray>-py311-gpu and PyPI's torch (CUDA bundled).
ARG RAY_VERSION=2.60.0
ARG VARIANT=cpu
ARG BASE_cpu=rayproject/ray:${RAY_VERSION}-py311-cpu
ARG BASE_cuda=rayproject/ray:${RAY_VERSION}-py311-gpu

FROM ${BASE_cpu} AS base-cpu
ENV TORCH_INDEX=https://download.pytorch.org/whl/cpu

FROM ${BASE_cuda} AS base-cuda
ENV TORCH_INDEX=https://pypi.org/simple

FROM base-${VARIANT}
ARG RAY_VERSION
LABEL org.opencontainers.image.title="ts3ray" org.opencontainers.image.version="0.1.0"
WORKDIR /home/ray/ts3ray
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users ts3ray ./ts3ray
COPY --chown=ray:users sweeps ./sweeps
# ray pinned to the base image's version: the driver, the workers and KubeRay agree
RUN pip install --no-cache-dir --extra-index-url "${TORCH_INDEX}" . "ray[default,tune]==${RAY_VERSION}" \
    && python -c "import ts3ray, torch, ray; print(ts3ray.__version__, torch.__version__, ray.__version__)"
ENV RAY_USAGE_STATS_ENABLED=0 OMP_NUM_THREADS=1
