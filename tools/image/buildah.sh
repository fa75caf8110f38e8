#!/usr/bin/env bash
# buildah with this repository's own image store: build/containers (IMAGE_STORE overrides),
# driver vfs, so building here needs no overlay support and leaves the host's store alone.
set -euo pipefail
store=${IMAGE_STORE:-$(cd "$(dirname "$0")/../.." && pwd)/build/containers}
mkdir -p "$store"
exec buildah --root "$store/storage" --runroot "$store/run" --storage-driver vfs "$@"
