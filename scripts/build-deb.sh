#!/usr/bin/env bash
# `make deb`: builds OUTDIR/weir_VERSION-1_ARCH.deb from a built weir binary, with dpkg-deb --root-owner-group (no
# fakeroot, no root needed). Files are laid out by `make install` (PREFIX=/usr, units in /lib/systemd/system);
# Depends comes from dpkg-shlibdeps; everything under /etc/weir is a conffile. Prints the .deb's path last.
# Usage: scripts/build-deb.sh BIN OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: build-deb.sh BIN OUTDIR}
outdir=${2:?usage: build-deb.sh BIN OUTDIR}
[ -x "$bin" ] || { echo "build-deb: $bin is not an executable" >&2; exit 1; }
version=$(cat VERSION)
# The Debian revision: weir's own version is VERSION; this is the first packaging of it.
debversion=$version-${DEB_REVISION:-1}
arch=$(dpkg --print-architecture)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# Reproducible: file times and the changelog date are the commit's.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

work=$(mktemp -d /tmp/weir-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
make --no-print-directory -s install DESTDIR="$root" PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system \
  DOCDIR=/usr/share/doc/weir WEIR_BIN="$bin" INSTALL_LICENSE=no >/dev/null
# State the agent creates at run time (StateDirectory=weir, mode 0700) is not shipped: postinst creates
# /var/lib/weir 0700 (a shipped 0700 directory is lintian's non-standard-dir-perm) and purge removes it.

doc=$root/usr/share/doc/weir
years=$(git log --format=%cd --date=format:%Y 2>/dev/null | sed -n '$p;1p' | sort -u | paste -sd- -)
sed "s|@YEARS@|${years:-$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)}|" packaging/debian/copyright > "$doc/copyright"
chmod 0644 "$doc/copyright"
{
  echo "weir ($debversion) unstable; urgency=medium"
  echo
  echo "  * weir $version, commit $commit."
  echo
  echo " -- weir maintainers <weir@example.org>  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.Debian.gz"
chmod 0644 "$doc/changelog.Debian.gz"
# Debian policy: documentation larger than 4 KiB is compressed; the units' Documentation= follow.
find "$doc" -name '*.md' -size +4k -exec gzip -9n {} +
for f in "$root"/lib/systemd/system/weir*.service; do
  for d in $(grep -o 'file:///usr/share/doc/weir/[^ ]*' "$f" | sed 's|file://||'); do
    if [ ! -e "$root$d" ] && [ -e "$root$d.gz" ]; then sed -i "s|file://$d\b|file://$d.gz|" "$f"; d=$d.gz; fi
    [ -e "$root$d" ] || { echo "build-deb: $f names $d, which the package does not have" >&2; exit 1; }
  done
done

# dpkg-shlibdeps wants a source tree: debian/control naming the package, run from its parent.
mkdir -p "$work/src/debian" "$root/DEBIAN"
printf 'Source: weir\n\nPackage: weir\nArchitecture: any\n' > "$work/src/debian/control"
depends=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/bin/weir" 2>"$work/shlibdeps.err" \
  | sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.err" >&2; exit 1; }
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; cat "$work/shlibdeps.err" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$debversion|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
  packaging/debian/control.in > "$root/DEBIAN/control"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$outdir"
deb=$outdir/weir_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
