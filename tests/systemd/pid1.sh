#!/bin/sh
# PID 1 of new PID, mount, UTS, IPC and network namespaces (see
# tests/systemd_test.c): build a root of its own and become systemd there,
# which boots gpup-test.target and through it the gpup.service installed
# under /usr/local from the scratch root $1/root ($1/sanitizer.conf, if
# there, is a drop-in for a sanitized build).  The host lends /usr
# (read-only), /etc (an overlay whose changes stay in memory), /sys and
# /proc/sys read-only, and a few device nodes; /var, /tmp and /run are
# new tmpfs, so nothing systemd's boot units do (tmpfiles cleaning /tmp,
# udev, sysctl) reaches the host.  Its console is $1/console.log.
set -eu
s=$1
r=$s/root.ns
mount --make-rprivate /
mkdir -p "$r"
mount -t tmpfs -o mode=0755 tmpfs "$r"
for d in bin sbin lib lib32 lib64 libx32; do
	[ -L "/$d" ] && cp -P "/$d" "$r/$d"
done
mkdir -p "$r/usr" "$r/etc" "$r/.ov/etc" "$r/.ov/work" "$r/proc" "$r/sys" "$r/dev" \
	"$r/run" "$r/tmp" "$r/var/lib" "$r/var/log" "$r/var/tmp" "$r/var/cache" "$r/root"
mount --rbind /usr "$r/usr"
mount -o remount,bind,ro "$r/usr"
mount --bind "$s/root/usr/local" "$r/usr/local"
mount -o remount,bind,ro "$r/usr/local"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$r/.ov/etc,workdir=$r/.ov/work" "$r/etc"
mkdir -p "$r/etc/gpup" "$r/etc/systemd/system"
cp "$s/gpup.conf" "$r/etc/gpup/gpup.conf"
if [ -f "$s/sanitizer.conf" ]; then
	mkdir -p "$r/etc/systemd/system/gpup.service.d"
	cp "$s/sanitizer.conf" "$r/etc/systemd/system/gpup.service.d/"
fi
cat >"$r/etc/systemd/system/gpup-test.target" <<'UNIT'
[Unit]
Description=gpup under systemd as PID 1 (tests/systemd_test.c)
Wants=gpup.service
UNIT
mount -t proc proc "$r/proc"
mount --bind "$r/proc/sys" "$r/proc/sys"
mount -o remount,bind,ro "$r/proc/sys"
mount --rbind /sys "$r/sys"
mount -o remount,bind,ro "$r/sys"
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for n in null zero full random urandom tty; do
	touch "$r/dev/$n"
	mount --bind "/dev/$n" "$r/dev/$n"
done
: >"$s/console.log"
touch "$r/dev/console"
mount --bind "$s/console.log" "$r/dev/console"
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs tmpfs "$r/dev/shm"
cd "$r"
mkdir .old
pivot_root . .old
umount -l /.old
rmdir /.old
# Nothing in the boot may load modules, set the clock or reboot the host.
exec setpriv --bounding-set=-sys_module,-sys_time,-sys_boot,-sys_rawio,-wake_alarm,-syslog \
	env container=gpup-test /lib/systemd/systemd --system --unit=gpup-test.target \
	--show-status=no
