#!/bin/sh
# The layer check must catch what it is for: on a copy of the tree, each
# wrong include below makes scripts/check-layers.sh fail naming the file
# and line, and the allowed ones (a white-box test, a room's own private
# header) leave it passing.  Run by `make check-layers` after the check.

src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpup-layers-XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
fails=0

fresh() {
	rm -rf "$tmp/tree"
	mkdir -p "$tmp/tree"
	for d in uapi vfu iommu scheduler migrate hv gpup samples tests perf fuzz scripts; do
		[ -d "$src/$d" ] && cp -R "$src/$d" "$tmp/tree/"
	done
}

# expect pass|fail FILE INCLUDE WHAT: add `#include "INCLUDE"` to FILE.
expect() {
	fresh
	mkdir -p "$(dirname "$tmp/tree/$2")"
	printf '#include "%s"\n' "$3" >> "$tmp/tree/$2"
	line=$(wc -l < "$tmp/tree/$2" | tr -d ' ')
	out=$(sh "$tmp/tree/scripts/check-layers.sh" "$tmp/tree" 2>&1)
	rc=$?
	if [ "$1" = pass ] && [ $rc -ne 0 ]; then
		echo "check-layers-test: FAILED: $4 was refused:"
		echo "$out"
		fails=$((fails + 1))
	elif [ "$1" = fail ] && { [ $rc -eq 0 ] || ! echo "$out" | grep -q "^$2\(:$line\)\{0,1\}: "; }; then
		echo "check-layers-test: FAILED: $4 was not caught at $2:$line (exit $rc):"
		echo "$out"
		fails=$((fails + 1))
	fi
}

expect fail hv/vm.c gpup/cli/cli.h "hv including the CLI"
expect fail vfu/msg.c iommu/iommu.h "vfu including the IOMMU"
expect fail scheduler/sched.c gpup/gpu/gpu.h "the scheduler including a gpup room"
expect fail gpup/pool/pool.c gpup/daemon/daemon.h "a room including one above it"
expect fail gpup/vgpu/vgpu.c hv/hv.h "a room other than the CLI including hv"
expect fail gpup/cli/cli.c gpup/daemon/daemon_int.h "another room's private header"
expect fail tests/layers_probe_test.c hv/hv_int.h "a test not named white-box"
expect fail gpup/vgpu/vgpu_extra.h uapi/gpup_vgpu.h "a second public header in a room"
expect pass tests/layers_probe_wb_test.c hv/hv_int.h "a white-box test"
expect pass gpup/vgpu/vgpu.c gpup/vgpu/vgpu_int.h "a room's own private header"
expect pass gpup/cli/cli.c hv/hv.h "the CLI including hv"

[ $fails -eq 0 ] && echo "check-layers-test: 11 cases, each caught or allowed as it should be"
[ $fails -eq 0 ]
