#!/bin/sh
# `make install`: gpup, its guest images, scenarios and their schemas, man
# pages, the systemd unit, bash completion, an example config file and the
# cluster resource agent (OCF: OCFDIR/resource.d/gpup/vm).
#   sh scripts/install.sh BIN GUESTDIR MANDIR
# Where, from the environment (the Makefile passes its variables):
# DESTDIR (a staging root, for packages), PREFIX (default /usr/local),
# BINDIR, LIBDIR, DATADIR, MANDIR, UNITDIR, COMPLETIONDIR, SYSCONFDIR
# (default /etc: the daemon reads /etc/gpup/gpup.conf), OCFDIR (default
# /usr/lib/ocf, where Pacemaker looks whatever the prefix).  An existing
# gpup.conf is left alone.
set -eu
bin=$1 guests=$2 man=$3
src=$(dirname "$0")/..
: "${DESTDIR:=}" "${PREFIX:=/usr/local}"
: "${BINDIR:=$PREFIX/bin}" "${LIBDIR:=$PREFIX/lib}" "${DATADIR:=$PREFIX/share}"
: "${MANDIR:=$DATADIR/man}" "${UNITDIR:=$PREFIX/lib/systemd/system}"
: "${COMPLETIONDIR:=$DATADIR/bash-completion/completions}" "${SYSCONFDIR:=/etc}"
: "${OCFDIR:=/usr/lib/ocf}"
d=$DESTDIR

install -D -m 0755 "$bin" "$d$BINDIR/gpup"
# bench finds them beside the binary: BINDIR/../lib/gpup/guests
install -d "$d$LIBDIR/gpup/guests"
install -m 0644 "$guests"/*.elf "$d$LIBDIR/gpup/guests/"
install -d "$d$DATADIR/gpup/scenarios" "$d$DATADIR/gpup/schema"
install -m 0644 "$src"/samples/scenarios/*.json "$d$DATADIR/gpup/scenarios/"
install -m 0644 "$src"/docs/bench-*.schema.json "$d$DATADIR/gpup/schema/"
install -d "$d$MANDIR/man1"
install -m 0644 "$man"/*.1 "$d$MANDIR/man1/"
install -d "$d$UNITDIR"
sed "s|@BINDIR@|$BINDIR|g" "$src/dist/gpup.service.in" >"$d$UNITDIR/gpup.service"
chmod 0644 "$d$UNITDIR/gpup.service"
install -D -m 0644 "$src/dist/gpup.bash-completion" "$d$COMPLETIONDIR/gpup"
install -D -m 0755 "$src/dist/ocf/gpup-vm" "$d$OCFDIR/resource.d/gpup/vm"
if [ ! -e "$d$SYSCONFDIR/gpup/gpup.conf" ]; then
	install -D -m 0644 "$src/dist/gpup.conf" "$d$SYSCONFDIR/gpup/gpup.conf"
fi
echo "gpup: installed under ${d:-/}$PREFIX (config $d$SYSCONFDIR/gpup/gpup.conf)"
