# See aarch64-unknown-linux-musl.Dockerfile.
FROM ghcr.io/cross-rs/x86_64-unknown-linux-musl:0.2.5
