#!/bin/sh
# make_deb.sh STAGE VERSION OUTDIR: packs what `make install DESTDIR=STAGE PREFIX=/usr
# LIBDIR=/usr/lib/MULTIARCH` laid out (STAGE ends in debian/cartoongan) into OUTDIR/cartoongan_VERSION_ARCH.deb, doing what debhelper would (`make deb`
# runs it; packaging/install.mk):
#   strips the command and the libraries (the objects keep their symbols in the build
#   folder), compresses the man pages, adds the copyright file and the changelog from
#   packaging/deb/, writes DEBIAN/control with Depends computed by dpkg-shlibdeps from
#   the ELF files' needs (so it names the library packages this system builds against),
#   DEBIAN/shlibs for libcartoongan.so.0, the ldconfig trigger and md5sums, packs it with
#   dpkg-deb (files owned by root), and checks it with lintian: any error fails.
set -eu
stage=$(cd "$1" && pwd) version=$2 outdir=$(mkdir -p "$3" && cd "$3" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
meta=$here/packaging/deb
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=usr/lib/$multiarch
doc=$stage/usr/share/doc/cartoongan
deb=$outdir/cartoongan_${version}_$arch.deb
maintainer=${DEBFULLNAME:+$DEBFULLNAME <${DEBEMAIL:-}>}
[ -n "$maintainer" ] || maintainer='cartoongan maintainers <maintainers@users.noreply.r-seed-af51a9bb.example>'

# The changelog's newest entry must be this version, or lintian and apt would disagree
# with the package about what it is.
head -n 1 "$meta/changelog" | grep -q "^cartoongan ($version)" || {
    echo "make_deb: packaging/deb/changelog does not start with version $version (CG_VERSION); add an entry" >&2
    exit 1
}
[ -x "$stage/usr/bin/cartoongan" ] && [ -f "$stage/$libdir/libcartoongan.so.$version" ] || {
    echo "make_deb: $stage is not an install with PREFIX=/usr LIBDIR=/usr/lib/$multiarch" >&2
    exit 1
}

strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$stage/usr/bin/cartoongan" "$stage/$libdir/libcartoongan.so.$version"
strip --strip-debug --remove-section=.comment "$stage/$libdir/libcartoongan.a"
gzip -9nf "$stage"/usr/share/man/man1/*.1
install -d "$doc"
install -m 0644 "$meta/copyright" "$doc/copyright"
gzip -9nc "$meta/changelog" >"$doc/changelog.gz"
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage/usr/bin/cartoongan"

# dpkg-shlibdeps reads debian/control and expects the files in debian/cartoongan/, which is
# why STAGE is such a folder; the control file it reads is made beside it, and DEBIAN/ in
# it is how it finds the package's root.
install -d "$stage/DEBIAN"
case $stage in */debian/cartoongan) ;; *)
    echo "make_deb: STAGE must be a folder named debian/cartoongan (dpkg-shlibdeps wants that)" >&2
    exit 1 ;;
esac
printf 'Source: cartoongan\n\nPackage: cartoongan\nArchitecture: any\n' >"$stage/../control"
depends=$(cd "$stage/../.." && dpkg-shlibdeps -O -edebian/cartoongan/usr/bin/cartoongan \
    -edebian/cartoongan/$libdir/libcartoongan.so.$version | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "make_deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
# the description's last line says what the browser app is, when the package holds it
webapp='/^@WEBAPP@$/d'
[ -f "$stage/usr/share/cartoongan/web/index.html" ] &&
    webapp="s|^@WEBAPP@\$| 'cartoongan serve' serves the browser app, which runs the styles in a browser.|"
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" -e "$webapp" "$meta/control.in" >"$stage/DEBIAN/control"
# the package that provides the soname, for dpkg-shlibdeps in packages built against it
sover=$(objdump -p "$stage/$libdir/libcartoongan.so.$version" | sed -n 's/.*SONAME *libcartoongan\.so\.//p')
echo "libcartoongan $sover cartoongan (>= $version)" >"$stage/DEBIAN/shlibs"
echo "activate-noawait ldconfig" >"$stage/DEBIAN/triggers"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage"/DEBIAN/*

mkdir -p "$outdir"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "built $deb"
if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb"
else
    echo "make_deb: lintian is not installed, so the package is not checked (tools/install_deps.sh installs it)" >&2
    exit 1
fi
