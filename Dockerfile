# Gantry in a container: build with the Rust toolchain, run on a slim Debian with git.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/gantry /usr/local/bin/gantry
ENV GANTRY__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
WORKDIR /var/lib/gantry
ENTRYPOINT ["gantry"]
CMD ["serve"]
