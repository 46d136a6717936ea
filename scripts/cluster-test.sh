#!/bin/sh
# make cluster-test: the OCF agent (dist/ocf/gpup-vm) under a real
# one-node Pacemaker + corosync cluster, started here and torn down at the
# end: Pacemaker starts the VM, a VM killed with SIGKILL is found by the
# recurring monitor and recovered (stopped and started again, fail-count
# 1), and a stop through the cluster stops it.
#
# Everything runs in namespaces of its own (mount, network, PID): corosync
# talks over a private loopback, and Pacemaker's state (/var/lib/pacemaker),
# logs, IPC (/dev/shm) and the agent's directory are tmpfs mounts there,
# so the host's cluster configuration, if any, is neither read nor
# touched.  Needs root, /dev/kvm and the packages of `scripts/deps.sh
# cluster` (pacemaker, corosync, pacemaker-cli-utils).
#
# Environment: GPUP_BIN, GPUP_GUESTS (set by the Makefile).
set -eu

if [ "${1:-}" != --inside ]; then
	: "${GPUP_BIN:?GPUP_BIN is not set: run make cluster-test}"
	[ "$(id -u)" -eq 0 ] || { echo "cluster-test: needs root" >&2; exit 2; }
	[ -w /dev/kvm ] || { echo "cluster-test: skipped: no usable /dev/kvm" >&2; exit 0; }
	sh "$(dirname "$0")/deps.sh" cluster
	exec unshare --mount --net --pid --fork --mount-proc sh "$0" --inside
fi

GUESTS=${GPUP_GUESTS:?}
AGENT=$(cd "$(dirname "$0")/.." && pwd)/dist/ocf/gpup-vm
W=$(mktemp -d /tmp/gpup-cluster.XXXXXX)
RUN=$W/run
fail() {
	echo "cluster-test: FAIL: $*" >&2
	echo "--- crm_mon" >&2
	crm_mon -1 --failcounts 2>&1 | sed 's/^/  /' >&2 || true
	echo "--- what the agent said (pacemaker.log)" >&2
	grep -h -e 'log_op_output' -e 'Result of' /var/log/pacemaker/pacemaker.log 2>/dev/null |
		tail -n 20 | sed 's/^/  /' >&2 || true
	echo "--- $RUN/ocf" >&2
	ls -l "$RUN/ocf" 2>&1 | sed 's/^/  /' >&2 || true
	echo "--- the VM's log" >&2
	tail -n 20 "$RUN/ocf/vm1.log" 2>&1 | sed 's/^/  /' >&2 || true
	exit 1
}
# Poll a shell condition for up to $1 seconds.
wait_for() {
	t=$1
	shift
	n=0
	while ! sh -c "$*" >/dev/null 2>&1; do
		n=$((n + 1))
		[ $n -lt $((t * 5)) ] || return 1
		sleep 0.2
	done
}
cleanup() {
	pkill -TERM pacemakerd 2>/dev/null || true
	wait_for 30 '! pgrep -x pacemakerd' || pkill -KILL -f pacemaker 2>/dev/null || true
	pkill -TERM corosync 2>/dev/null || true
	[ -f "$RUN/gpup.pid" ] && kill "$(cat "$RUN/gpup.pid")" 2>/dev/null || true
	pkill -TERM -f -- "--run-dir $RUN" 2>/dev/null || true
	sleep 0.5
	rm -rf "$W"
}
trap cleanup EXIT

# A private loopback, private state, the agent where Pacemaker looks.
ip link set lo up
for d in /var/lib/pacemaker /var/log/pacemaker /var/lib/corosync /var/log/corosync /dev/shm /run; do
	[ -d "$d" ] || mkdir -p "$d"
	mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /dev/shm
for d in cib pengine blackbox cores; do
	install -d -o hacluster -g haclient -m 0750 "/var/lib/pacemaker/$d"
done
chown hacluster:haclient /var/log/pacemaker
mkdir -p /usr/lib/ocf/resource.d
mount -t tmpfs tmpfs /usr/lib/ocf/resource.d
install -D -m 0755 "$AGENT" /usr/lib/ocf/resource.d/gpup/vm
cat >"$W/corosync.conf" <<EOF
totem {
	version: 2
	cluster_name: gpup-test
	crypto_cipher: none
	crypto_hash: none
}
logging {
	to_stderr: no
	to_logfile: yes
	logfile: /var/log/corosync/corosync.log
	to_syslog: no
}
quorum {
	provider: corosync_votequorum
}
nodelist {
	node {
		name: node1
		nodeid: 1
		ring0_addr: 127.0.0.1
	}
}
EOF

echo "cluster-test: corosync and pacemaker (one node, private namespaces)"
corosync -f -c "$W/corosync.conf" >"$W/corosync.out" 2>&1 &
wait_for 30 'corosync-quorumtool -s | grep -q "Quorate: *Yes"' || fail "corosync never became quorate"
pacemakerd -f >"$W/pacemakerd.out" 2>&1 &
wait_for 120 'crm_mon -1 | grep -q "Online: \[ node1 \]"' || fail "pacemaker never brought node1 online"
crm_attribute -t crm_config -n stonith-enabled -v false

"$GPUP_BIN" --run-dir "$RUN" daemon --detach --state-dir "$W/state" --sim-gpus 1 --vram 1G >/dev/null
UUID=$("$GPUP_BIN" --run-dir "$RUN" create --type sim-512m-2)
vms() {
	"$GPUP_BIN" --run-dir "$RUN" vms 2>/dev/null
}

cibadmin -C -o resources -X "<primitive id='vm1' class='ocf' provider='gpup' type='vm'>
  <instance_attributes id='vm1-params'>
    <nvpair id='vm1-name' name='name' value='vm1'/>
    <nvpair id='vm1-kernel' name='kernel' value='$GUESTS/dirty.elf'/>
    <nvpair id='vm1-gpus' name='gpus' value='$UUID'/>
    <nvpair id='vm1-run' name='run_dir' value='$RUN'/>
    <nvpair id='vm1-gpup' name='gpup' value='$GPUP_BIN'/>
    <nvpair id='vm1-append' name='append' value='ms=600000'/>
  </instance_attributes>
  <operations>
    <op id='vm1-monitor' name='monitor' interval='2s' timeout='10s'/>
  </operations>
</primitive>"
# Whether Pacemaker has vm1 started, with no action under way.  The VM
# answers (gpup vms) a little before the agent's start returns: a kill
# in between fails the start itself, which no cluster retries.
started() {
	crm_resource --wait --timeout 60s >/dev/null 2>&1 &&
		crm_resource --resource vm1 --locate 2>/dev/null | grep -q 'running on: node1' &&
		"$GPUP_BIN" --run-dir "$RUN" vms | grep -q '^vm1 *running'
}
started || fail "Pacemaker did not start the VM"
echo "cluster-test: start: Pacemaker started vm1 through the agent: ok"

pid=$(cat "$RUN/ocf/vm1.pid")
kill -KILL "$pid"
wait_for 60 "[ \"\$(cat '$RUN/ocf/vm1.pid' 2>/dev/null)\" != '$pid' ]" &&
	started || fail "the killed VM was not recovered"
crm_mon -1 --failcounts | grep -q "vm1: .*fail-count=1" || fail "no fail-count of 1 for vm1"
echo "cluster-test: monitor failure and recovery: killed (pid $pid), found and restarted (pid $(cat "$RUN/ocf/vm1.pid")): ok"

crm_resource --resource vm1 --meta --set-parameter target-role --parameter-value Stopped >/dev/null
wait_for 30 "! '$GPUP_BIN' --run-dir '$RUN' vms | grep -q '^vm1 '" || fail "the cluster did not stop vm1"
vms >/dev/null
echo "cluster-test: stop through the cluster: ok"
echo "cluster-test: passed"
