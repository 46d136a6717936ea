#!/bin/sh
# The man pages, made from gpup's own --help texts with help2man, so that
# the two never disagree: gpup.1 from `gpup --help`, and gpup-CMD.1 for
# every command that `gpup --help` lists, from `gpup CMD --help`.
#   sh scripts/man.sh BUILD/gpup OUTDIR
set -e
bin=$(readlink -f "$1")
out=$2
mkdir -p "$out/bin"
ver=$("$bin" --version | cut -d" " -f2)
cmds=$("$bin" --help | sed -n '/^commands:/,$s/^  \([a-z][a-z-]*\)  .*/\1/p')

# A stand-in program per page, named as the page: its --version names it,
# its --help is the command's, with the usage lines in the form help2man
# reads ("Usage:", then "or:" for a second form, continuations joined).
wrapper() {
	name=$1
	shift
	cat >"$out/bin/$name" <<EOS
#!/bin/sh
if [ "\$1" = --version ]; then
	"$bin" --version | sed 's/^gpup /$name /'
	exit 0
fi
"$bin" $* --help | awk '
	NR == 1 && /^usage:/ { sub(/^usage:/, "Usage:"); u = 1; line = \$0; next }
	u && /^ +gpup / { print line; sub(/^ +/, ""); line = "   or: " \$0; next }
	u && /^ +[^ ]/ { sub(/^ +/, " "); line = line \$0; next }
	u { print line; u = 0 }
	{ print }
	END { if (u) print line }'
EOS
	chmod +x "$out/bin/$name"
}

see_also="$out/see-also.h2m"
{
	echo "[SEE ALSO]"
	printf '.BR gpup (1)'
	for c in $cmds; do printf ',\n.BR gpup-%s (1)' "$c"; done
	printf '\n.PP\nThe documentation in docs/ of the source tree: ARCHITECTURE.md, SCHEDULER.md,\nSECURITY.md, SERVICE.md, VMM.md.\n'
} >"$see_also"

wrapper gpup
help2man -N -s 1 -S "gpup $ver" -m "gpup manual" -i "$see_also" \
	-n "GPU partitioning for KVM: vGPU partitions served over vfio-user" \
	-o "$out/gpup.1" "$out/bin/gpup"
for c in $cmds; do
	summary=$("$bin" --help | sed -n "s/^  $c  *//p")
	wrapper "gpup-$c" "$c"
	help2man -N -s 1 -S "gpup $ver" -m "gpup manual" -i "$see_also" -n "$summary" \
		-o "$out/gpup-$c.1" "$out/bin/gpup-$c"
done
