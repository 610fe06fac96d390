# bench/lib/paths.sh: the measured paths of bench/demo, bench/run and bench/trace-switch.
# Sourced after bench/lib/perftest.sh and tests/lib/vbusd.sh, where rxe0 lives.
#
#   bp_start BUS     one vbusd (tests/lib/vbusd.sh) with bus BUS and two vrdma devices backed
#                    by rxe0: vrdma1 backend=relay and, when the module vbus_vrdma is loaded,
#                    vrdma0 backend=kernel. Sets BP_PATHS (the paths below that exist here)
#                    and, when the kernel backend is missing, BP_NOKERNEL (why). The relay
#                    keeps the benchmarks' settings: VBUS_RELAY_SPIN_US=0 VBUS_RELAY_RT=1
#                    unless set (docs/verbs-guest.md says why). VD_BUS_ARGS, VD_DEV_ARGS: more
#                    arguments of the bus and of both devices (tests/lib/vbusd.sh).
#   bp_as PATH       sets PT_CLIENT_WRAP/PT_CLIENT_DEV, PT_SERVER_WRAP/PT_SERVER_DEV for PATH
#   bp_label PATH    how the tables name PATH
#   bp_backend PATH  native, relay or kernel
#   bp_banner        prints, loudly, that the kernel paths are missing and why (if they are)
#   bp_stat          "SOFTIRQ BUSY": /proc/stat's softirq and non-idle time of all CPUs so
#                    far, in seconds
#   bp_stats         reads numbers, one a line: "MEDIAN MIN MAX N" (exit 1 on none)
# Paths (client side first; the other side is the server):
#   native              perftest on rxe0, both sides
#   guest-kernel        client under vbus-run on vrdma0 (kernel backend), server native
#   guest               client under vbus-run on vrdma1 (relay backend), server native
#   guest-guest-kernel  both sides under vbus-run on vrdma0
#   guest-guest         both sides under vbus-run on vrdma1
# ("guest" and "guest-guest" are the relay's, as in bench/reference from before the module.)
BP_KDEV=vrdma0 BP_RDEV=vrdma1

bp_start() {
	local bus=${1:-bench} err
	export VBUS_RELAY_SPIN_US=${VBUS_RELAY_SPIN_US:-0} VBUS_RELAY_RT=${VBUS_RELAY_RT:-1}
	BP_NOKERNEL=
	VD_BACKEND=relay vd_start "$bus" "$BP_RDEV" || return 1
	if [ "${VBUS_KMOD:-absent}" != loaded ]; then
		BP_NOKERNEL="module vbus_vrdma ${VBUS_KMOD:-absent}: ${VBUS_KMOD_REASON:-not run under tests/vm/run}"
	elif [ ! -c "${VBUS_KMOD_DEV:-/dev/vbus-vrdma}" ]; then
		BP_NOKERNEL="module loaded but no ${VBUS_KMOD_DEV:-/dev/vbus-vrdma}"
	elif ! err=$(vd_ctl dev add "$BP_KDEV" class vrdma backing="$VBUS_RXE" port=1 \
		gid="$VBUS_GID_INDEX" backend=kernel ${VD_DEV_ARGS:-} bus "$bus" 2>&1); then
		BP_NOKERNEL="vbusctl dev add $BP_KDEV backend=kernel failed: $err"
	fi
	if [ -n "$BP_NOKERNEL" ]; then
		BP_PATHS="native guest guest-guest"
	else
		BP_PATHS="native guest-kernel guest guest-guest-kernel guest-guest"
	fi
}

bp_as() {
	PT_CLIENT_WRAP=() PT_SERVER_WRAP=() PT_CLIENT_DEV=$VBUS_RXE PT_SERVER_DEV=$VBUS_RXE
	case $1 in
	native) ;;
	guest-kernel) PT_CLIENT_WRAP=("${VD_RUN[@]}") PT_CLIENT_DEV=$BP_KDEV ;;
	guest) PT_CLIENT_WRAP=("${VD_RUN[@]}") PT_CLIENT_DEV=$BP_RDEV ;;
	guest-guest-kernel) PT_CLIENT_WRAP=("${VD_RUN[@]}") PT_CLIENT_DEV=$BP_KDEV
		PT_SERVER_WRAP=("${VD_RUN[@]}") PT_SERVER_DEV=$BP_KDEV ;;
	guest-guest) PT_CLIENT_WRAP=("${VD_RUN[@]}") PT_CLIENT_DEV=$BP_RDEV
		PT_SERVER_WRAP=("${VD_RUN[@]}") PT_SERVER_DEV=$BP_RDEV ;;
	*) echo "bp_as: unknown path $1" >&2; return 1 ;;
	esac
}

bp_label() {
	case $1 in
	guest-kernel) echo "guest (kernel)" ;;
	guest) echo "guest (relay)" ;;
	guest-guest-kernel) echo "guest-guest (kernel)" ;;
	guest-guest) echo "guest-guest (relay)" ;;
	*) echo "$1" ;;
	esac
}

bp_backend() {
	case $1 in native) echo native ;; *-kernel) echo kernel ;; *) echo relay ;; esac
}

bp_banner() {
	[ -n "${BP_NOKERNEL:-}" ] || return 0
	echo
	echo "################################################################################"
	echo "##  NO KERNEL BACKEND: the guest (kernel) columns are missing."
	echo "##  $BP_NOKERNEL"
	echo "##  (make kernel builds build/kernel/vbus_vrdma.ko; tests/vm/run loads it at boot)"
	echo "################################################################################"
}

bp_stat() {
	local _c u n s i w q sq st hz
	read -r _c u n s i w q sq st _ </proc/stat
	hz=$(getconf CLK_TCK)
	awk -v sq="$sq" -v b="$((u + n + s + q + sq + st))" -v hz="$hz" \
		'BEGIN{printf "%.3f %.3f", sq / hz, b / hz}'
}

bp_stats() {
	sort -g | awk '{a[NR] = $1} END{if (!NR) exit 1
		m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%s %s %s %d\n", m, a[1], a[NR], NR}'
}
