#!/bin/sh
# install_deps.sh: the Debian 12 packages that building and testing cartoongan needs.
# See "Dependencies" in README.md for why each one is there.
set -eu
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config curl ca-certificates python3 \
    libjpeg62-turbo-dev libpng-dev libwebp-dev libexif-dev \
    libgif-dev libimagequant-dev libavformat-dev libavcodec-dev libswscale-dev libavutil-dev \
    libhdf5-dev libprotobuf-c-dev protobuf-c-compiler libheif-dev libcurl4-openssl-dev libssl-dev
# `make install` and `make deb`: man pages from --help, the package's Depends and its check
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    help2man dpkg-dev lintian man-db
# djpeg and cjpeg: JPEG to and from the PPM files the examples read and write (README,
# "Installing"; tests/test_install.sh runs them)
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    libjpeg-turbo-progs
# Open MPI: `mpirun -np K cartoongan train|cartoonize` across processes and machines (make
# links it into the command when it finds mpicc; README, "On several machines")
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    openmpi-bin libopenmpi-dev
# `cartoongan serve` (libmicrohttpd) and the browser app's build, tests and benchmark:
# emscripten, a headless browser, node and npm (npm only where node did not bring its own:
# NodeSource's nodejs conflicts with Debian's npm package).
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    libmicrohttpd-dev emscripten chromium nodejs
command -v npm >/dev/null ||
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends npm
