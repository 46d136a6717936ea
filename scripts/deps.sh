#!/bin/sh
# Install the Debian packages gpup builds and tests with, if any are missing.
# As root this runs apt-get; otherwise it prints the one line to run.
# QEMU is the baseline the VMM is compared with, and a test boots the same
# guest image under it.  python3-jsonschema checks bench files against
# the schemas in docs/ (scripts/check-bench-schema.py); help2man makes
# the man pages from the --help texts (scripts/man.sh); debhelper builds
# the Debian package (dpkg-buildpackage -b -us -uc, which also checks for
# build-essential; tests/deb_test.c);
# python3-prometheus-client parses the metrics (scripts/check-metrics.py);
# libnvme-dev finds NVMe namespaces for `gpup storage`;
# systemd, curl and man-db: tests/systemd_test.c boots systemd as PID 1 of
# namespaces of its own to run gpup.service, scrape it and read its man page;
# resource-agents has ocf-tester, which checks the cluster resource agent
# (dist/ocf/gpup-vm; tests/ocf_test.c) against the DTD with xmllint
# (libxml2-utils, only recommended by resource-agents).
# `deps.sh fuzz` what only the fuzz harnesses need (clang and libFuzzer);
# `deps.sh cluster` what make cluster-test needs (Pacemaker and corosync).
set -e
PKGS="gcc make libc6-dev linux-libc-dev libcriterion-dev libjson-c-dev
libxxhash-dev libpciaccess-dev libdrm-dev libzstd-dev libseccomp-dev libnvme-dev
gnuplot-nox qemu-system-x86 python3-jsonschema help2man debhelper
python3-prometheus-client systemd curl man-db resource-agents libxml2-utils
build-essential"
[ "$1" = fuzz ] && PKGS="$PKGS clang libclang-rt-14-dev"
[ "$1" = cluster ] && PKGS="$PKGS pacemaker corosync pacemaker-cli-utils"
missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in *"install ok installed"*) ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "gpup: missing Debian packages; run as root:" >&2
	echo "  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "gpup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
