# switchyard in a container: built with the pinned toolchain, run from a small image with
# glibc and CA certificates only (no shell), as an unprivileged user.
#
#   docker build -t switchyard --build-arg SWITCHYARD_COMMIT=$(git rev-parse --short HEAD) .
#   docker run --rm -p 3000:3000 switchyard proxy --from :3000 --to http://192.0.2.10:8080
#   docker run --rm -p 3000:3000 -v $PWD/switchyard.toml:/etc/switchyard/switchyard.toml:ro switchyard
#
# Untested here (no container runtime on the development machines); see packaging/README.md.

# --- build ---
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
# Shown by `switchyard version`.
ARG SWITCHYARD_COMMIT=""
ENV SWITCHYARD_COMMIT=${SWITCHYARD_COMMIT}
RUN cargo build --release --locked -p switchyard --bin switchyard \
    && install -D target/release/switchyard /out/switchyard

# --- run ---
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/switchyard /usr/local/bin/switchyard
COPY examples/single-pool.toml /etc/switchyard/switchyard.toml
USER nonroot
EXPOSE 3000
# SIGTERM (docker stop) drains in-flight requests for up to shutdown_timeout (30s): give
# `docker stop` a longer --time than that, or lower it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/switchyard"]
CMD ["--config", "/etc/switchyard/switchyard.toml"]
