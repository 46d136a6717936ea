#!/bin/sh
# make linux-guest, step one: Debian bookworm's kernel packages for the
# Linux guest, unpacked under DIR (never installed on the host): the
# image (DIR/vmlinuz), the headers and kbuild a module is built against
# (DIR/root/usr/src/linux-headers-VER), and busybox-static for the
# initramfs (DIR/busybox).  The guest's kernel is not the host's: VER is
# what linux-image-amd64 depends on in the host's apt sources, or
# GPUP_LINUX_ABI (say 6.1.0-57).  Writes DIR/kver last, so a run that
# fails half-way is done again.
set -eu
DIR=${1:?usage: linux-fetch.sh DIR}

die() {
	echo "linux-fetch: $*" >&2
	exit 2
}

command -v apt-get >/dev/null 2>&1 || die "needs apt-get (a Debian host)"
abi=${GPUP_LINUX_ABI:-}
if [ -z "$abi" ]; then
	abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -n 1)
	if [ -z "$abi" ]; then
		apt-get update -qq >/dev/null 2>&1 || true
		abi=$(apt-cache depends linux-image-amd64 2>/dev/null |
			sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -n 1)
	fi
fi
[ -n "$abi" ] || die "cannot tell the kernel version: set GPUP_LINUX_ABI (e.g. 6.1.0-57)"
kbuild=linux-kbuild-$(echo "$abi" | cut -d. -f1-2)
ver=$abi-amd64

rm -rf "$DIR/debs" "$DIR/root" "$DIR/kver"
mkdir -p "$DIR/debs" "$DIR/root"
echo "linux-fetch: Debian's $ver kernel, headers, $kbuild, busybox-static into $DIR" >&2
(cd "$DIR/debs" && apt-get download -q "linux-image-$ver" "linux-headers-$ver" \
	"linux-headers-$abi-common" "$kbuild" busybox-static) >"$DIR/fetch.log" 2>&1 ||
	die "apt-get download failed: see $DIR/fetch.log"
for deb in "$DIR"/debs/*.deb; do
	dpkg-deb -x "$deb" "$DIR/root"
done
# The headers' Makefile includes the common half by its installed path.
echo "include $(cd "$DIR/root/usr/src/linux-headers-$abi-common" && pwd)/Makefile" \
	>"$DIR/root/usr/src/linux-headers-$ver/Makefile"
cp "$DIR/root/boot/vmlinuz-$ver" "$DIR/vmlinuz"
cp "$DIR/root/bin/busybox" "$DIR/busybox"
echo "$ver" >"$DIR/kver"
