#!/bin/sh
# make interop: gpup partitions under upstream QEMU's vfio-user client.
#
# Builds (once) a Debian sid chroot under build/interop/ with debootstrap
# and QEMU from sid in it, never on the host; starts a gpup daemon on sim
# GPUs with its run directory inside the chroot; and boots the sample
# guests under that QEMU with its default machine and a partition attached
# with -device vfio-user-pci, once with shared guest RAM (a memfd the
# daemon maps) and once with QEMU's default private RAM (reached with
# VFIO_USER_DMA_READ/WRITE).  KVM where /dev/kvm works, else TCG.
# docs/INTEROP.md says what each case checks.
#
# Environment: GPUP_BIN, GPUP_GUESTS (set by the Makefile),
# GPUP_INTEROP_DIR (the chroot; default build/interop/sid),
# GPUP_INTEROP_MIRROR (default: the host's Debian mirror from its apt
# sources), GPUP_INTEROP_ONLY (a space-separated list of case names),
# GPUP_LINUX_DIR (the Linux guest, from make linux-guest), GPUP_LINUX_CMDLINE
# (more kernel parameters for it), GPUP_INTEROP_BENCH (runs of the Linux
# driver's overhead measurement; none by default), GPUP_INTEROP_BENCH_ARGS
# (more arguments for gpup-infer in it, e.g. exec=0).
set -eu

GPUP=${GPUP_BIN:?GPUP_BIN is not set: run make interop}
GUESTS=${GPUP_GUESTS:?GPUP_GUESTS is not set: run make interop}
ROOT=${GPUP_INTEROP_DIR:-build/interop/sid}
ONLY=${GPUP_INTEROP_ONLY:-}
mkdir -p "$(dirname "$ROOT")"
ROOT=$(cd "$(dirname "$ROOT")" && pwd)/$(basename "$ROOT")

die() {
	echo "interop: $*" >&2
	exit 2
}

host_mirror() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '/^URIs:/ { print $2; exit }' "$f"
	done | grep -v security | head -n 1
	[ -f /etc/apt/sources.list ] &&
		awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list
	true
}

# 1. The chroot: QEMU from sid, kept between runs.
if [ ! -x "$ROOT/usr/bin/qemu-system-x86_64" ]; then
	[ "$(id -u)" -eq 0 ] || die "building the chroot needs root (debootstrap)"
	if ! command -v debootstrap >/dev/null 2>&1; then
		echo "interop: installing debootstrap" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
	fi
	mirror=${GPUP_INTEROP_MIRROR:-$(host_mirror | head -n 1)}
	[ -n "$mirror" ] || die "no Debian mirror in the host's apt sources: set GPUP_INTEROP_MIRROR"
	echo "interop: debootstrap sid with qemu-system-x86 into $ROOT (a few minutes)" >&2
	rm -rf "$ROOT"
	debootstrap --variant=minbase --include=qemu-system-x86 sid "$ROOT" "$mirror" \
		>"$ROOT.log" 2>&1 || die "debootstrap failed: see $ROOT.log"
fi
QEMU_VERSION=$(chroot "$ROOT" qemu-system-x86_64 --version | head -n 1)
chroot "$ROOT" qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vfio-user-pci"' ||
	die "$QEMU_VERSION has no vfio-user-pci device"

# 2. /dev and /proc for QEMU, a daemon whose sockets QEMU can reach.
WORK=$ROOT/gpup-interop
LOGS=$(dirname "$ROOT")/logs
mounted=""
daemon_pid=""
cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		n=0
		while kill -0 "$daemon_pid" 2>/dev/null && [ $n -lt 50 ]; do
			sleep 0.1
			n=$((n + 1))
		done
	fi
	for m in $mounted; do
		umount "$ROOT/$m" 2>/dev/null || umount -l "$ROOT/$m" 2>/dev/null || true
	done
	# Each case's console log outlives the run, in build/interop/logs.
	if [ -d "$WORK" ]; then
		rm -rf "$LOGS" && mkdir -p "$LOGS"
		cp "$WORK"/*.log "$LOGS/" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for m in dev proc sys; do
	if ! mountpoint -q "$ROOT/$m"; then
		mount --bind "/$m" "$ROOT/$m"
		mounted="$mounted $m"
	fi
done
rm -rf "$WORK"
mkdir -p "$WORK/run" "$WORK/state" "$WORK/guests"
cp "$GUESTS"/*.elf "$WORK/guests/"
"$GPUP" --run-dir "$WORK/run" daemon --detach --state-dir "$WORK/state" \
	--sim-gpus 1 --vram 4G >/dev/null
daemon_pid=$(cat "$WORK/run/gpup.pid")

accel=tcg
if [ -w /dev/kvm ] && printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' |
	timeout 30 chroot "$ROOT" qemu-system-x86_64 -accel kvm -M none -nodefaults \
		-display none -qmp stdio >/dev/null 2>&1; then
	accel=kvm
fi
echo "interop: $QEMU_VERSION, accel $accel, default machine"

# The Linux guest (make linux-guest) runs Linux's ring-0 code, which a
# PVM host (KVM without hardware virtualization, as on nested cloud VMs)
# cannot run: it gets KVM only where the CPU shows vmx or svm.
linux_accel=tcg
if [ "$accel" = kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
	linux_accel=kvm
fi
LINUX_DIR=${GPUP_LINUX_DIR:-}
if [ -n "$LINUX_DIR" ] && [ -f "$LINUX_DIR/initramfs.cpio.gz" ]; then
	mkdir -p "$WORK/linux"
	cp "$LINUX_DIR/vmlinuz" "$LINUX_DIR/initramfs.cpio.gz" "$WORK/linux/"
	echo "interop: Linux guest $(cat "$LINUX_DIR/kver"), accel $linux_accel" \
		"(hardware virtualization: $(grep -qwE 'vmx|svm' /proc/cpuinfo && echo yes || echo no))"
else
	LINUX_DIR=""
fi

# Warnings and worse reach the console (loglevel=5), so that a case can
# fail on an oops or a WARN.
LINUX_CMDLINE="console=ttyS0 loglevel=5${GPUP_LINUX_CMDLINE:+ $GPUP_LINUX_CMDLINE}"
kernel_complained() {
	grep -qE 'Oops|BUG:|WARNING:|Call Trace' "$log"
}

# 3. The cases.
pass=0
fail=0
failed=""
selected() {
	[ -z "$ONLY" ] || echo " $ONLY " | grep -q " $1 "
}

# boot NAME ACCEL MEMORY MEGS QEMU-ARGS...: a partition attached; sets st.
boot() {
	name=$1 bacc=$2 mem=$3 megs=$4
	shift 4
	uuid=$("$GPUP" --run-dir "$WORK/run" create --type sim-1g-4)
	if [ "$mem" = shared ]; then
		memopt="-object memory-backend-memfd,id=ram,size=${megs}M,share=on -machine memory-backend=ram"
	else
		memopt="-m $megs"
	fi
	log=$WORK/$name.log
	st=0
	: >"$log"
	hook_pid=""
	if [ -n "${BOOT_HOOK:-}" ]; then
		$BOOT_HOOK &
		hook_pid=$!
	fi
	# shellcheck disable=SC2086
	timeout "${GPUP_INTEROP_TIMEOUT:-300}" chroot "$ROOT" qemu-system-x86_64 -accel "$bacc" \
		-nographic -nodefaults -no-user-config -serial stdio $memopt "$@" \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"/gpup-interop/run/$uuid.sock\"}}" \
		>"$log" 2>&1 </dev/null || st=$?
	[ -z "$hook_pid" ] || wait "$hook_pid" || true
	# The daemon may not have seen QEMU's socket close yet: retry a while.
	n=0
	until "$GPUP" --run-dir "$WORK/run" destroy "$uuid" >/dev/null 2>&1 ||
		! "$GPUP" --run-dir "$WORK/run" list | grep -q "$uuid"; do
		n=$((n + 1))
		[ $n -lt 50 ] || { echo "interop: cannot destroy partition $uuid" >&2; break; }
		sleep 0.1
	done
}

# verdict NAME EXPECT: isa-debug-exit makes QEMU exit with (status << 1)
# | 1, so 1 is the guest's 0.
verdict() {
	name=$1 expect=$2
	if [ "$st" -eq 1 ] && grep -q "$expect" "$log"; then
		pass=$((pass + 1))
		printf '  %-22s ok    %s\n' "$name" "$(grep -a "$expect" "$log" | tail -n 1 | tr -d '\r' | cut -c1-90)"
	else
		fail=$((fail + 1))
		failed="$failed $name"
		printf '  %-22s FAIL  (qemu exit %s; last lines of %s:)\n' "$name" "$st" "$name.log"
		tr -d '\r' <"$log" | grep -av '^\s*$' | tail -n 6 | sed 's/^/      /'
	fi
}

# NAME GUEST MEMORY APPEND EXPECT (a line the guest prints).
run_case() {
	selected "$1" || return 0
	boot "$1" "$accel" "$3" 256 -kernel "/gpup-interop/guests/$2.elf" -append "$4"
	verdict "$1" "$5"
}

# NAME COMMAND EXPECT [MEMORY]: the Linux guest runs COMMAND (init's
# argv), on shared RAM unless MEMORY is private.
run_linux_case() {
	selected "$1" || return 0
	if [ -z "$LINUX_DIR" ]; then
		printf '  %-22s skipped (no Linux guest: make linux-guest)\n' "$1"
		return 0
	fi
	boot "$1" "$linux_accel" "${4:-shared}" 512 -kernel /gpup-interop/linux/vmlinuz \
		-initrd /gpup-interop/linux/initramfs.cpio.gz \
		-append "$LINUX_CMDLINE -- $2"
	! kernel_complained || st=0
	verdict "$1" "$3"
}

# 4. make interop-bench: the same infer guest, submit-bound (n=64) and
# compute-bound (n=256), under QEMU (shared RAM; with the watch word and
# with nowatch, which rings every doorbell) and under gpup run on the same
# daemon and partition type; the guest times its own iterations.
if [ "${1:-}" = bench ]; then
	runs=${GPUP_INTEROP_RUNS:-5}
	# One run's microseconds per iteration, and its doorbell line.
	bench_qemu() {
		uuid=$("$GPUP" --run-dir "$WORK/run" create --type sim-1g-4)
		log=$WORK/bench.log
		# shellcheck disable=SC2086
		timeout 300 chroot "$ROOT" qemu-system-x86_64 -accel "$accel" \
			-nographic -nodefaults -no-user-config -serial stdio \
			-object memory-backend-memfd,id=ram,size=256M,share=on -machine memory-backend=ram \
			-kernel /gpup-interop/guests/infer.elf -append "$1" \
			-device isa-debug-exit,iobase=0xf4,iosize=4 \
			-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"/gpup-interop/run/$uuid.sock\"}}" \
			>"$log" 2>&1 </dev/null || true
		bench_done "$uuid"
	}
	bench_run() {
		uuid=$("$GPUP" --run-dir "$WORK/run" create --type sim-1g-4)
		log=$WORK/bench.log
		timeout 300 "$GPUP" --run-dir "$WORK/run" run --mem 256M \
			--kernel "$GUESTS/infer.elf" --append "$1" --gpu "$uuid" >"$log" 2>&1 </dev/null || true
		bench_done "$uuid"
	}
	bench_done() {
		n=0
		until "$GPUP" --run-dir "$WORK/run" destroy "$1" >/dev/null 2>&1; do
			n=$((n + 1))
			[ $n -lt 50 ] || break
			sleep 0.1
		done
		us=$(tr -d '\r' <"$log" | sed -n 's/.*infer: n=.* ok, .* \([0-9][0-9]*\) us per iteration.*/\1/p')
		[ -n "$us" ] || { tr -d '\r' <"$log" | tail -n 5 >&2; die "infer did not finish"; }
		echo "$us $(tr -d '\r' <"$log" | sed -n 's/.*infer: doorbells rung \([0-9]*\), skipped while watched \([0-9]*\)/\1 \2/p')"
	}
	# median min max of the first column of stdin
	stats() {
		sort -n | awk '{ v[NR] = $1 } END { printf "%d %d %d", v[int((NR + 1) / 2)], v[1], v[NR] }'
	}
	printf '%-8s %-14s %22s %16s\n' case vmm "us/iter median [range]" "doorbells/run"
	for args in "n=64 iters=40" "n=256 iters=2"; do
		for vmm in gpup-run qemu qemu-nowatch; do
			: >"$WORK/samples"
			i=0
			while [ $i -lt "$runs" ]; do
				case $vmm in
				gpup-run) bench_run "$args" >>"$WORK/samples" ;;
				qemu) bench_qemu "$args" >>"$WORK/samples" ;;
				qemu-nowatch) bench_qemu "$args nowatch" >>"$WORK/samples" ;;
				esac
				i=$((i + 1))
			done
			set -- $(stats <"$WORK/samples")
			rung=$(awk '{ r += $2; s += $3 } END { printf "%d rung, %d skipped", r / NR, s / NR }' "$WORK/samples")
			printf '%-8s %-14s %8s [%s-%s] %s\n' "${args%% *}" "$vmm" "$1" "$2" "$3" "$rung"
			eval "med_$(echo "$vmm" | tr - _)=$1"
		done
		# shellcheck disable=SC2154
		awk -v r="$med_gpup_run" -v q="$med_qemu" -v n="$med_qemu_nowatch" -v a="${args%% *}" \
			'BEGIN { printf "%-8s QEMU/gpup run: %.2f with the watch word, %.2f without\n", a, q / r, n / r }'
	done
	exit 0
fi

for mem in shared private; do
	run_case "hello-$mem" hello "$mem" "" "hello from a gpup guest"
	run_case "infer-$mem" infer "$mem" "n=64 iters=4" "ok, sum"
	run_case "infer256-$mem" infer "$mem" "n=256 iters=1" "ok, sum"
	run_case "vdi-$mem" vdi "$mem" "" "vdi: 320x200"
	run_case "latency-$mem" latency "$mem" "n=50" "latency: done"
	run_case "dirty-$mem" dirty "$mem" "" "dirty: ok"
	run_case "hostile-$mem" hostile "$mem" "" "hostile: 0 check(s) failed"
done
run_linux_case linux-info gpup-info "fill + copy round trip: ok"
run_linux_case linux-infer "gpup-infer n=64 iters=4" "ok, sum"
run_linux_case linux-infer256 "gpup-infer n=256 iters=1" "ok, sum"
run_linux_case linux-infer-private "gpup-infer n=64 iters=4" "ok, sum" private
run_linux_case linux-vdi gpup-vdi "vdi: 320x200"
# Device loss: the partition is destroyed (--force) under a running
# gpup-infer.  The program must fail with a device error (exit 5), and
# the guest kernel must not oops.
lose_partition() {
	n=0
	until grep -q "init: running" "$log" || [ $n -ge 1200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	sleep 3
	"$GPUP" --run-dir "$WORK/run" destroy --force "$uuid" >/dev/null 2>&1
}
if selected linux-lost && [ -n "$LINUX_DIR" ]; then
	BOOT_HOOK=lose_partition
	boot linux-lost "$linux_accel" shared 512 -kernel /gpup-interop/linux/vmlinuz \
		-initrd /gpup-interop/linux/initramfs.cpio.gz \
		-append "$LINUX_CMDLINE -- gpup-infer n=64 iters=1000000"
	BOOT_HOOK=""
	if kernel_complained; then
		st=0 # the kernel complained: fail whatever the status
	elif [ "$st" -eq 11 ]; then
		st=1 # gpup-infer's 5, device error: what this case expects
	fi
	verdict linux-lost "infer: device error"
fi

# With the daemon's watchdog on, hostile's stalled stream must come back
# as a WATCHDOG fault and the driver must set the device up again.
if selected linux-hostile; then
	"$GPUP" --run-dir "$WORK/run" sched --gpu gpu0 --policy weighted --watchdog 2000 >/dev/null
	run_linux_case linux-hostile "gpup-hostile watchdog=1" "hostile: 0 check(s) failed"
	"$GPUP" --run-dir "$WORK/run" sched --gpu gpu0 --policy weighted --watchdog 0 >/dev/null
fi

# GPUP_INTEROP_BENCH=RUNS: the driver's overhead.  The freestanding infer
# guest and gpup-infer on the Linux guest, alternately, under the same
# QEMU, accelerator and shared RAM; each prints the device time per
# iteration after an untimed first step, and that step's time.  Median
# and range over RUNS boots of each.
linux_stats() { # label values...
	label=$1
	shift
	sorted=$(printf '%s\n' "$@" | sort -n)
	cnt=$#
	med=$(printf '%s\n' "$sorted" | sed -n "$(((cnt + 1) / 2))p")
	printf '  %-34s median %6s us  range %s..%s us  (%s runs:%s)\n' "$label" "$med" \
		"$(printf '%s\n' "$sorted" | head -n 1)" "$(printf '%s\n' "$sorted" | tail -n 1)" "$cnt" \
		"$(printf ' %s' "$@")"
}
per_iter() {
	tr -d '\r' <"$log" | sed -n 's/.* \([0-9][0-9]*\) us per iteration.*/\1/p' | tail -n 1
}
first_step() {
	tr -d '\r' <"$log" | sed -n 's/.*(first step \([0-9][0-9]*\) us, untimed).*/\1/p' | tail -n 1
}
if [ -n "${GPUP_INTEROP_BENCH:-}" ] && [ -n "$LINUX_DIR" ]; then
	for args in "n=64 iters=20" "n=256 iters=2"; do
		free="" lin="" free1="" lin1=""
		i=0
		while [ $i -lt "$GPUP_INTEROP_BENCH" ]; do
			boot bench-free "$linux_accel" shared 512 -kernel /gpup-interop/guests/infer.elf \
				-append "$args"
			v=$(per_iter)
			[ "$st" -eq 1 ] && [ -n "$v" ] && free="$free $v" && free1="$free1 $(first_step)"
			boot bench-linux "$linux_accel" shared 512 -kernel /gpup-interop/linux/vmlinuz \
				-initrd /gpup-interop/linux/initramfs.cpio.gz \
				-append "$LINUX_CMDLINE -- gpup-infer $args${GPUP_INTEROP_BENCH_ARGS:+ $GPUP_INTEROP_BENCH_ARGS}"
			v=$(per_iter)
			[ "$st" -eq 1 ] && [ -n "$v" ] && lin="$lin $v" && lin1="$lin1 $(first_step)"
			i=$((i + 1))
		done
		echo "interop: infer $args, accel $linux_accel, shared RAM:"
		# shellcheck disable=SC2086
		[ -z "$free" ] || linux_stats "freestanding infer guest" $free
		# shellcheck disable=SC2086
		[ -z "$lin" ] || linux_stats "gpup-infer on Linux + gpup_vgpu" $lin
		# The untimed first step of each (one-time costs).
		# shellcheck disable=SC2086
		[ -z "$free1" ] || linux_stats "  first step, freestanding" $free1
		# shellcheck disable=SC2086
		[ -z "$lin1" ] || linux_stats "  first step, Linux + gpup_vgpu" $lin1
	done
fi

echo "interop: $pass passed, $fail failed${failed:+ (}${failed# }${failed:+)}"
[ "$fail" -eq 0 ]
