# cross-rs's musl image already carries the aarch64 musl gcc that ring's C code needs; we pin
# the tag so a release build is reproducible. Nothing else is required: no OpenSSL, no cmake
# (rustls uses ring, rumqttc is built without aws-lc).
FROM ghcr.io/cross-rs/aarch64-unknown-linux-musl:0.2.5
