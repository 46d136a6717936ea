#!/bin/sh
# The README demo: start a gpup daemon on simulated GPUs, look at the pool,
# cut partitions of different sizes, use two of them the way a guest driver
# would (over their vfio-user sockets), destroy them, stop the daemon.
# Everything lives in a temporary run/state directory that is removed at
# the end.  GPUP_BIN names the binary (make demo sets it).
set -eu

GPUP=${GPUP_BIN:-build/gpup}
tmp=$(mktemp -d /tmp/gpup-demo.XXXXXX)
run="$tmp/run"
state="$tmp/state"
export GPUP_RUN_DIR="$run"

stop_daemon() {
	[ -f "$run/gpup.pid" ] || return 0
	kill "$(cat "$run/gpup.pid")" 2>/dev/null || true
	n=0
	while [ -f "$run/gpup.pid" ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
}
cleanup() {
	stop_daemon
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step() {
	printf '\n== %s\n' "$*"
}
# Show a command, then run it.
show() {
	printf '$ gpup %s\n' "$*"
	"$GPUP" "$@"
}

step "Start the daemon: 2 simulated GPUs, 8 GiB of VRAM each (run dir $run)"
show daemon --detach --state-dir "$state" --sim-gpus 2 --vram 8G

step "The pool"
show gpus

step "Partition types: fractions of a GPU's VRAM, and how many fit right now"
show types --gpu gpu0

step "Create partitions of different sizes"
printf '$ gpup create --gpu gpu0 --type sim-4g-2\n'
A=$("$GPUP" create --gpu gpu0 --type sim-4g-2)
echo "$A"
printf '$ gpup create --gpu gpu0 --type sim-2g-4\n'
B=$("$GPUP" create --gpu gpu0 --type sim-2g-4)
echo "$B"
printf '$ gpup create --type sim-1g-8          # no --gpu: the fuller GPU gets it\n'
C=$("$GPUP" create --type sim-1g-8)
echo "$C"
printf '$ gpup create --gpu gpu1 --type sim-8g-1\n'
D=$("$GPUP" create --gpu gpu1 --type sim-8g-1)
echo "$D"
show list

step "Availability follows placement (buddy slots, naturally aligned)"
show types --gpu gpu0

step "A full GPU says no, in one line, and nothing changes"
if show create --gpu gpu1 --type sim-1g-8; then
	echo "unexpected: gpu1 should be full" >&2
	exit 1
else
	echo "(exit code $?)"
fi

step "Use two partitions as a guest would: guest RAM by DMA_MAP, queues via BAR0,"
echo "   doorbell eventfds, MSI-X eventfds on fences; results checked bit for bit"
show exercise "$A" --size 64M
show exercise "$C" --size 16M

step "Boot VMs on two partitions of gpu0 side by side (gpup run, KVM): infer"
echo "   checks gemm + reduce bit for bit, vdi renders frames at 60 fps"
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -n "${GPUP_GUESTS:-}" ]; then
	printf '$ gpup run --kernel infer.elf --gpu %s --append "n=64 iters=4" &\n' "$A"
	"$GPUP" run --kernel "$GPUP_GUESTS/infer.elf" --gpu "$A" --append "n=64 iters=4" &
	vm=$!
	printf '$ gpup run --kernel vdi.elf --gpu %s\n' "$B"
	"$GPUP" run --kernel "$GPUP_GUESTS/vdi.elf" --gpu "$B"
	wait "$vm"
else
	echo "(skipped: no usable /dev/kvm here)"
fi

step "Destroy the partitions"
for u in "$A" "$B" "$C" "$D"; do
	show destroy "$u"
done
show list

step "Stop the daemon (SIGTERM); its log"
stop_daemon
cat "$run/daemon.log"
echo
echo "demo done."
