#!/bin/sh
# make check-layers: hold every `#include "..."` of the tree against the
# layering of docs/ARCHITECTURE.md.  A unit is a top-level module, or a
# room of gpup/ (gpup/ROOM/); the table below is the one place the allowed
# edges are written.  Two rules:
#   1. a unit includes only its own headers, uapi/'s, and the public
#      headers of the units its row names;
#   2. a private header (NAME_int.h) is included only from its own folder,
#      or from a white-box test (tests/*_wb_test.c) or a fuzz harness.
# tests/, perf/ and fuzz/ may use every public header.  Prints each
# offending include as FILE:LINE: and exits 1 if there is one.
#
# usage: sh scripts/check-layers.sh [ROOT]     (default: the tree it is in)

root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2

# unit: the units it may include besides itself and uapi
allowed() {
	case $1 in
	uapi) echo "" ;;
	vfu) echo "" ;;
	iommu) echo "" ;;
	scheduler) echo "" ;;
	migrate) echo "vfu iommu" ;;
	hv) echo "vfu migrate" ;;
	samples) echo "" ;;
	gpup/base) echo "" ;;
	gpup/jail) echo "" ;;
	gpup/gpu) echo "gpup/base iommu scheduler" ;;
	gpup/vgpu) echo "gpup/base gpup/gpu iommu scheduler vfu migrate" ;;
	gpup/pool) echo "gpup/base gpup/gpu scheduler" ;;
	gpup/ctl) echo "gpup/base" ;;
	gpup/drv) echo "gpup/base vfu" ;;
	gpup/daemon) echo "gpup/base gpup/ctl gpup/jail gpup/pool gpup/vgpu gpup/gpu iommu scheduler vfu migrate" ;;
	gpup/bench) echo "gpup/base gpup/ctl gpup/drv gpup/gpu scheduler" ;;
	gpup/cli) echo "gpup/base gpup/bench gpup/ctl gpup/daemon gpup/drv gpup/jail gpup/pool gpup/vgpu gpup/gpu \
iommu scheduler vfu migrate hv" ;;
	tests | perf | fuzz) echo "*" ;;
	*) echo "?" ;;
	esac
}

# The unit a path (file or included header) belongs to.
unit_of() {
	case $1 in
	gpup/*/*) echo "$1" | cut -d/ -f1-2 ;;
	*/*) echo "${1%%/*}" ;;
	*) echo "" ;;
	esac
}

bad=0
report() {
	echo "$1: $2" >&2
	bad=1
}

check_include() { # file line header
	from=$(unit_of "$1")
	to=$(unit_of "$3")
	[ -z "$to" ] && return 0          # a header of the file's own folder
	case ${3##*/} in
	*_int.h)
		[ "$(dirname "$1")" = "$(dirname "$3")" ] && return 0
		case $1 in
		tests/*_wb_test.c | fuzz/*_fuzz.c) ;;
		*) report "$1:$2" "includes $3, private to $(dirname "$3")/ (only its own files and white-box tests *_wb_test.c may)"
		   return ;;
		esac ;;
	esac
	[ "$from" = "$to" ] || [ "$to" = uapi ] && return 0
	rule=$(allowed "$from")
	[ "$rule" = "?" ] && { report "$1:$2" "unit $from has no row in scripts/check-layers.sh"; return; }
	[ "$rule" = "*" ] && return 0
	for u in $rule; do
		[ "$u" = "$to" ] && return 0
	done
	report "$1:$2" "$from may not include $3 ($to is not a layer below it; see docs/ARCHITECTURE.md)"
}

# A room's one public header is gpup/ROOM/ROOM.h; anything else but its
# _int.h is a header its neighbours could reach by accident.
for room in gpup/*/; do
	room=${room%/}
	for h in "$room"/*.h; do
		[ -e "$h" ] || continue
		case ${h##*/} in
		"${room##*/}.h" | "${room##*/}_int.h") ;;
		*) report "$h" "a room has one public header (${room##*/}.h) and one private one (${room##*/}_int.h)" ;;
		esac
	done
done

files=$(find uapi vfu iommu scheduler migrate hv gpup samples tests perf fuzz \
	\( -name '*.c' -o -name '*.h' \) 2>/dev/null | sort)
for f in $files; do
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
		sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/' > "${TMPDIR:-/tmp}/layers.$$"
	while read -r line hdr; do
		check_include "$f" "$line" "$hdr"
	done < "${TMPDIR:-/tmp}/layers.$$"
done
rm -f "${TMPDIR:-/tmp}/layers.$$"
[ $bad -eq 0 ] && echo "layers: $(echo "$files" | wc -l) files, every include allowed"
exit $bad
