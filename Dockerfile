# syntax=docker/dockerfile:1.7
# storage-broker: a locked release build whose dependency layer is cached apart from the
# project's sources (cargo-chef), then a small non-root runtime (distroless, glibc + CA certs).
#   docker build -t storage-broker .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=... -e BROKER_OIDC_ISSUER=... storage-broker

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The dependency graph alone: this layer changes only when Cargo.toml or Cargo.lock do.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin storage-broker
COPY . .
RUN cargo build --release --locked --bin storage-broker \
    && install -D target/release/storage-broker /out/storage-broker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/storage-broker /usr/local/bin/storage-broker
COPY --from=build /src/policies /etc/storage-broker/policies
ENV BROKER_POLICIES_DIR=/etc/storage-broker/policies \
    BROKER_LISTEN=0.0.0.0:8080 \
    BROKER_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/storage-broker"]
CMD ["serve"]
