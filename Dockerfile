# Gantry in a container: build with the Rust toolchain, run on a slim Debian with git.
# The base images are build arguments, for registries that mirror them under other names:
#   docker build --build-arg BUILD_IMAGE=mirror/rust:1-bookworm --build-arg RUNTIME_IMAGE=… .
ARG BUILD_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/gantry /usr/local/bin/gantry

# The runtime stage. The test suite builds it alone (tests/integration/runner/image.rs), on a
# Debian made locally and the binary its own `cargo build` made, and runs it as a runner.
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/gantry /usr/local/bin/gantry
ENV GANTRY__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
WORKDIR /var/lib/gantry
ENTRYPOINT ["gantry"]
CMD ["serve"]
