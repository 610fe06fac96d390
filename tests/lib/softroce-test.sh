# tests/lib/softroce-test.sh: what the tests of the installed vbus-softroce share (bash;
# sourced by tests/unit/softroce*.sh, which run on the host and boot their own VMs).
#   st_setup NAME     installs this tree (scripts/install) into a scratch prefix under
#                     build/NAME, as a user would get it, and sets ST_DIR (the scratch
#                     directory), ST_CMD (the installed vbus-softroce), ST_WORK (an empty
#                     working directory for CMD) and XDG_CACHE_HOME (ST_DIR/cache); skips
#                     (77) where no VM can boot. The cache is seeded from the tree's VM
#                     directory (VBUS_VM_DIR, default build/vm) by hard links when it has a
#                     kernel, so that no test downloads one twice.
#   st_expect WANT GOT WHAT   one "ok"/"FAIL" line; a FAIL sets st_fail=1
. "${VBUS_TOP:?}/tests/lib/time.sh"
st_fail=0

st_expect() {
	if [ "$1" = "$2" ]; then echo "ok   $3 (exit $2)"; else echo "FAIL $3: exit $2, wanted $1"; st_fail=1; fi
}

# At exit: the KVM probe's answer of this test's first boot goes to the tree's VM directory
# when that has none yet, for the tests after it (vbusd's --kvm-probe and tests/vm/run read
# the same "BOOT-ID ok|hang" line): the 15 s probe runs once per host boot, not per test.
st_share_probe() {
	local d=${VBUS_VM_DIR:-$VBUS_TOP/build/vm}
	[ -f "$d/kvm-probe" ] || [ ! -f "${XDG_CACHE_HOME:-/nonexistent}/vbus/kvm-probe" ] ||
		cp "$XDG_CACHE_HOME/vbus/kvm-probe" "$d/kvm-probe" 2>/dev/null || true
}

st_setup() {
	local src=${VBUS_VM_DIR:-$VBUS_TOP/build/vm}/kernel/current ver k
	if [ -d /sys/module/rdma_rxe ] || modprobe -n -q rdma_rxe 2>/dev/null; then
		echo "SKIP: this kernel has rdma_rxe: vbus-softroce runs on the host, these VM checks do not apply"
		exit 77
	fi
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: no qemu-system-x86_64: vbus-softroce cannot boot a VM here (apt-get install qemu-system-x86)"; exit 77; }
	ST_DIR=$VBUS_TOP/build/$1
	trap st_share_probe EXIT
	rm -rf "$ST_DIR"
	mkdir -p "$ST_DIR/work" "$ST_DIR/cache/vbus/kernel"
	"$VBUS_TOP/scripts/install" --prefix "$ST_DIR/usr" >/dev/null ||
		{ echo "FAIL: scripts/install into $ST_DIR/usr"; exit 1; }
	ST_CMD=$ST_DIR/usr/bin/vbus-softroce ST_WORK=$ST_DIR/work
	export XDG_CACHE_HOME=$ST_DIR/cache
	if [ -f "$src/vmlinuz" ] && [ -f "$src/modules/modules.dep" ]; then
		ver=$(cat "$src/version")
		k=$XDG_CACHE_HOME/vbus/kernel/$ver
		mkdir -p "$k"
		cp -al "$src/vmlinuz" "$src/version" "$src/modules" "$k/" 2>/dev/null ||
			cp -a "$src/vmlinuz" "$src/version" "$src/modules" "$k/"
		# and the PVH image extracted from it, if there is one (tests/vm/boot-image)
		for f in vmlinux vmlinux.src; do
			[ -f "$src/$f" ] && { cp -al "$src/$f" "$k/" 2>/dev/null || cp -a "$src/$f" "$k/"; }
		done
		ln -sfn "$ver" "$XDG_CACHE_HOME/vbus/kernel/current"
		# The KVM probe's answer for this host boot, so that no test repeats the 15 s probe.
		[ ! -f "${src%/kernel/current}/kvm-probe" ] || cp "${src%/kernel/current}/kvm-probe" "$XDG_CACHE_HOME/vbus/"
		echo "cache seeded from $src ($ver)"
	else
		echo "no kernel in $src: the first run downloads one into the cache"
	fi
}
