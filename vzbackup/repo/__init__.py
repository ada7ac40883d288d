"""The repository: content-defined chunks, zstd + AES-256-GCM, manifests written last."""
