#!/usr/bin/env bash
# Print the name of a Python base image built from Debian's own packages, building it first
# if the image store lacks it. For machines that reach Debian's archive but no image registry:
# the service image then builds FROM it (PYTHON_IMAGE) instead of the official python image.
# The tag is a hash of everything that goes into the image (this script included), so a change
# to the package list builds a new base and an unchanged one is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
packages=python3,python3-venv,python-is-python3,passwd
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
key=$( (echo "$suite $packages $mirror"; cat "$0") | sha256sum | cut -c1-16)
name=localhost/gitops-ml-python-base:$key
bah() { "$here/buildah.sh" "$@"; }

if bah inspect --type image "$name" >/dev/null 2>&1; then
    echo "$name"
    exit 0
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/python-base.XXXXXX")
ctr=
cleanup() { rm -rf "$root"; [ -z "$ctr" ] || bah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "python-base: debootstrap $suite ($packages)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
# Nothing at run time reads package caches, lists, documentation or translations.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/usr/share/info/*
ctr=$(bah from scratch)
mnt=$(bah mount "$ctr")
cp -a "$root"/. "$mnt"/
bah umount "$ctr" >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
bah commit --quiet "$ctr" "$name" >/dev/null
echo "$name"
