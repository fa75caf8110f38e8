#!/bin/sh
# Strip the symbol tables of the compiled modules below $1 (about 27 MiB of the service's
# environment); nothing at run time reads them. Left alone: the libraries auditwheel grafted
# into <package>.libs/ and the modules that load them (RPATH $ORIGIN/../<package>.libs), whose
# layout patchelf rewrote: strip breaks those ("ELF load command address/offset not
# page-aligned"). The build imports every module the service uses afterwards, so a module
# that strip broke fails the build rather than the service.
set -eu
find "$1" -type f \( -name '*.so' -o -name '*.so.*' \) ! -path '*.libs/*' | while read -r lib; do
    if readelf -d "$lib" | grep -Eq 'R(UN)?PATH.*\.libs'; then
        continue
    fi
    strip --strip-unneeded "$lib"
done
