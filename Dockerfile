# syntax=docker/dockerfile:1
#
# rdsiam in an image with nothing else: FROM scratch, one static (musl)
# binary, the public CA roots for the AWS API (the RDS CA bundle is built
# into the binary), a passwd entry for the numeric user it runs as. No
# shell, no package manager. Size target: 20 MB or less (the binary is most
# of it). It works with a read-only root filesystem: rdsiam writes nothing
# but `rdsiam run`'s socket directory under $TMPDIR (mount a tmpfs/emptyDir
# at /tmp for `run`; `proxy` needs none unless --unix-socket).
#
#   docker build -t rdsiam .
#   docker run --rm --read-only rdsiam --version
#
# The release workflow builds the binaries once (static musl, per arch) and
# hands them in with `--build-context binary=DIR` (DIR/out/amd64/rdsiam,
# DIR/out/arm64/rdsiam), which replaces the `binary` stage below.

ARG RUST_VERSION=1.95
ARG ALPINE_VERSION=3.22

FROM rust:${RUST_VERSION}-alpine${ALPINE_VERSION} AS binary
ARG TARGETARCH
# aws-lc (the TLS provider) builds its C with the Alpine toolchain.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc g++ make cmake perl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY certs ./certs
COPY testkit/Cargo.toml ./testkit/Cargo.toml
# The workspace names testkit; a stub is enough to build the binary alone.
RUN mkdir -p testkit/src testkit/src/bin \
 && touch testkit/src/lib.rs \
 && echo 'fn main() {}' > testkit/src/bin/rdsiam-sandbox.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin rdsiam \
 && mkdir -p "/out/${TARGETARCH}" \
 && cp target/release/rdsiam "/out/${TARGETARCH}/rdsiam"

FROM alpine:${ALPINE_VERSION} AS rootfs
# hadolint ignore=DL3018
RUN apk add --no-cache ca-certificates \
 && mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'rdsiam:x:65532:65532:rdsiam:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'rdsiam:x:65532:' > /rootfs/etc/group \
 && chmod 1777 /rootfs/tmp

FROM scratch
ARG TARGETARCH
COPY --from=rootfs /rootfs/ /
COPY --from=binary --chmod=0755 /out/${TARGETARCH}/rdsiam /usr/local/bin/rdsiam
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    HOME=/nonexistent \
    TMPDIR=/tmp
USER 65532:65532
# The proxy's Postgres listener and health endpoint (set them with
# RDSIAM_LISTEN / RDSIAM_HTTP_ADDRESS; loopback by default).
EXPOSE 5432 9801
ENTRYPOINT ["/usr/local/bin/rdsiam"]
CMD ["--help"]
