#!/bin/sh
# install_deps.sh: the Debian 12 packages that building and testing cartoongan needs.
# See "Dependencies" in README.md for why each one is there.
set -eu
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config curl ca-certificates python3 \
    libjpeg62-turbo-dev libpng-dev libwebp-dev libexif-dev
