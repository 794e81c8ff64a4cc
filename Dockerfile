# syntax=docker/dockerfile:1
# servicedb's image: one binary that serves `run` (the operator) and `migrate` (the migration
# Jobs), so the Jobs can run the operator's own image.
#
#   docker build -t ghcr.io/servicedb/servicedb:0.1.0 .
#
# .ci/check-ops checks what can be checked without a Docker engine: a numeric non-root
# USER, the ENTRYPOINT is the path the COPY writes, and the chart's default image.

# The Rust CI tests with; at least every dependency's rust-version (check-ops checks that).
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads: the manifest (which names the benches), the sources and the
# catalog migrations compiled into the binary.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY migrations ./migrations
# Cache mounts keep the registry and the target dir between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin servicedb \
    && cp target/release/servicedb /servicedb

# glibc, libgcc and CA certificates (rustls-native-certs reads /etc/ssl/certs), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /servicedb /servicedb
# distroless's nonroot user, numerically, so runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/servicedb"]
CMD ["run"]
