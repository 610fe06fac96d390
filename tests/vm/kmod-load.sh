# Sourced by tests/vm/guest-main (and tests/unit/vm-harness.sh): kmod_load KO loads the
# kernel module KO when it is a module built for the running kernel (vermagic against
# `uname -r`) whose dependencies load, and says what it did in VBUS_KMOD (loaded, absent or
# refused), VBUS_KMOD_REASON and VBUS_KMOD_DEV; kmod_here=1 when it inserted it.
# KMOD_SYSFS (default /sys/module) is where loaded modules are looked for (the unit test's
# own empty directory, so that a module loaded on its host does not answer for it).
# shellcheck shell=bash
kmod_load() {
	local ko=$1 vm rel d err
	VBUS_KMOD_DEV=/dev/vbus-vrdma
	local sys=${KMOD_SYSFS:-/sys/module}
	if [ -d "$sys/vbus_vrdma" ]; then
		VBUS_KMOD=loaded VBUS_KMOD_REASON="already loaded in $(uname -r)"; return
	fi
	if [ ! -f "$ko" ]; then
		VBUS_KMOD=absent VBUS_KMOD_REASON="no $ko (make kernel)"; return
	fi
	vm=$(modinfo -F vermagic "$ko" 2>/dev/null) rel=$(uname -r)
	if [ -z "$vm" ]; then
		VBUS_KMOD=refused VBUS_KMOD_REASON="$ko has no vermagic (not a kernel module?)"; return
	fi
	if [ "${vm%% *}" != "$rel" ]; then
		VBUS_KMOD=refused VBUS_KMOD_REASON="$ko is built for ${vm%% *}, this kernel is $rel (make kernel against its headers)"
		return
	fi
	for d in $(modinfo -F depends "$ko" | tr , ' '); do
		[ -d "$sys/${d//-/_}" ] || modprobe -q "$d" 2>/dev/null
		[ -d "$sys/${d//-/_}" ] ||
			{ VBUS_KMOD=refused VBUS_KMOD_REASON="it needs module $d, which is not loaded"; return; }
	done
	if ! err=$(insmod "$ko" 2>&1); then
		VBUS_KMOD=refused VBUS_KMOD_REASON="insmod failed: $err; $(dmesg 2>/dev/null | tail -n 2 | tr '\n' ' ')"
		return
	fi
	kmod_here=1
	VBUS_KMOD=loaded VBUS_KMOD_REASON="$ko in $rel"
	[ -c "$VBUS_KMOD_DEV" ] || VBUS_KMOD_REASON+="; but no $VBUS_KMOD_DEV"
}
