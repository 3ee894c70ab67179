# syntax=docker/dockerfile:1.7
# Multi-stage: a locked release build with cached registry and target directories, then a
# small non-root runtime. Issue 6 completes it (hadolint in CI, dependency layer, serve).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin storage-broker \
    && install -D target/release/storage-broker /out/storage-broker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/storage-broker /usr/local/bin/storage-broker
USER nonroot
ENTRYPOINT ["/usr/local/bin/storage-broker"]
CMD ["--help"]
