#!/usr/bin/env bash
# Build service/Dockerfile with buildah, on the Debian-built base (python-base.sh), into
# $IMAGE (default localhost/gitops-ml-service:dev), unless an image built from the same inputs
# is already in the store. The RUN steps see this machine's CA bundle and pip configuration
# (mounted read-only, never copied into a layer), which is how pip reaches the index here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${IMAGE:-localhost/gitops-ml-service:dev}
bah() { "$here/buildah.sh" "$@"; }
store=${IMAGE_STORE:-$repo/build/containers}
mkdir -p "$store"
# One build at a time per store: a second caller waits, then finds the image up to date.
exec 9>"$store/build.lock"
flock 9

base=$("$here/python-base.sh")
# The build's inputs (what .dockerignore lets through), hashed: an image built from the very
# same inputs is reused.
context=(.dockerignore contracts service tools/image/precompile.py tools/image/strip-extensions.sh)
inputs=$(cd "$repo" && { echo "$base"; find "${context[@]}" -type f ! -path '*/__pycache__/*' \
    ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
if bah inspect --type image "$image-$inputs" >/dev/null 2>&1; then
    bah tag "$image-$inputs" "$image" >/dev/null
    echo "image: $image is up to date (inputs $inputs)" >&2
    echo "$image"
    exit 0
fi
mounts=()
for path in /etc/ssl/certs /etc/pip.conf /etc/xdg/pip "$HOME/.config/pip" "$HOME/.pip" \
        "${PIP_CONFIG_FILE:-}"; do
    if [ -n "$path" ] && [ -e "$path" ]; then
        case "$path" in "$HOME"/*) target=/root/${path#"$HOME"/} ;; *) target=$path ;; esac
        mounts+=(-v "$path:$target:ro")
    fi
done
start=$(date +%s)
bah bud --isolation chroot --pull=never --layers=false "${mounts[@]}" \
    --build-arg PYTHON_IMAGE="$base" -f "$repo/service/Dockerfile" -t "$image" "$repo" >&2
# The previous build, now named only by its inputs tag, goes.
for old in $(bah images --format '{{.Name}}:{{.Tag}}' | grep -F "$image-" || true); do
    bah rmi "$old" >/dev/null 2>&1 || true
done
bah tag "$image" "$image-$inputs"
bah rmi --prune >/dev/null 2>&1 || true
echo "image: built $image in $(( $(date +%s) - start ))s on $base," \
    "$(bah images --format '{{.Size}}' "$image" | head -1)" >&2
echo "$image"
