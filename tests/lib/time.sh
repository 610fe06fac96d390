# tests/lib/time.sh: time limits that scale with the machine (bash; sourced by tests/run,
# the test scripts, tests/lib/*.sh and bench/lib/perftest.sh).
#
# A time limit in a test (a `# timeout: SEC` header, `timeout 30 CMD`, "wait for ready at
# most 10 s") says how long something takes at most on this project's machine, unloaded.
# Every such limit is multiplied by VBUS_TIME_SCALE, so that a slower or busier machine
# never fails a test while a hang is still caught. Measurements are not scaled: a benchmark
# reports its figures, it does not fail on them.
#
#   vt_scale               sets and exports VBUS_TIME_SCALE, once: the caller's value if
#                          given (raised to VT_FLOOR if below it), else VT_FLOOR times how
#                          much slower than the reference the calibration loop ran here
#                          (never below VT_FLOOR); VT_SCALE_WHY says which. Returns 2 (with
#                          a message) when VBUS_TIME_SCALE is not a number.
#   vt_secs N              N seconds (may be fractional) scaled, rounded up to whole seconds
#   vt_deadline N          the time N scaled seconds from now, for vt_past
#   vt_past DEADLINE       true once DEADLINE has passed
#   vt_until N CMD...      run CMD every 0.1 s until it succeeds (0) or N scaled seconds
#                          have passed (1)
#   vt_wait_for FILE PATTERN N [PID]
#                          until FILE has a line matching PATTERN (grep -E): 0; 1 after N
#                          scaled seconds, or at once when PID (the writer) has exited
#                          without writing it
#   vt_calibrate           (internal) measure; sets VT_CAL_MS, VT_REF_MS
# The C test programs read the same variable through tests/lib/vt-time.h.

# Limits are never less than VT_FLOOR times the figures written in the tests: those are
# what a test needs on the reference machine, and three times that is still short enough
# to catch a hang. tests/lib/vt-time.h has the same floor.
VT_FLOOR=3

# The calibration loop (bash arithmetic on one core, deterministic work: 50000 rounds on a
# host, 5000 inside the soft-RoCE test VM, where QEMU TCG runs it about 15 times slower)
# took these milliseconds on the reference machine (this project's 2-core host, Debian 12,
# bash 5.2, idle; the median of 3 runs). `bash tests/lib/time.sh` prints a machine's figure.
VT_REF_HOST_MS=100
VT_REF_VM_MS=150

# _vt_now VAR: microseconds since the epoch into VAR (bash's clock: no program runs)
# (its own locals are prefixed: printf -v would set a local of the same name, not the caller's)
_vt_now() { local _vt_t=${EPOCHREALTIME//[!0-9]/}; printf -v "$1" '%s' "${_vt_t:-$(date +%s%6N)}"; }
vt_now_us() { local t; _vt_now t; echo "$t"; }

vt_loop_ms() { # ROUNDS
	local t0 s=0 i
	t0=$(vt_now_us)
	for ((i = 0; i < $1; i++)); do s=$(( (s + i * i) % 7919 )); done
	echo $(( ($(vt_now_us) - t0) / 1000 ))
}

vt_calibrate() {
	local a b c n=50000
	VT_REF_MS=$VT_REF_HOST_MS
	[ "${VBUS_IN_VM:-}" = 1 ] && n=5000 VT_REF_MS=$VT_REF_VM_MS
	a=$(vt_loop_ms $n) b=$(vt_loop_ms $n) c=$(vt_loop_ms $n)
	VT_CAL_MS=$(printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p)	# the median
	return 0
}

vt_scale() {
	local s=${VBUS_TIME_SCALE:-}
	if [ -n "$s" ]; then
		if ! [[ $s =~ ^[0-9]+(\.[0-9]+)?$|^\.[0-9]+$ ]]; then
			echo "VBUS_TIME_SCALE='$s' is not a number (a factor such as 3 or 4.5)" >&2
			return 2
		fi
		if awk -v s="$s" -v f="$VT_FLOOR" 'BEGIN{exit !(s < f)}'; then
			echo "VBUS_TIME_SCALE=$s is below the floor $VT_FLOOR: using $VT_FLOOR" >&2
			VT_SCALE_WHY="VBUS_TIME_SCALE=$s raised to the floor"
			s=$VT_FLOOR
		else
			VT_SCALE_WHY=${VT_SCALE_WHY:-set by VBUS_TIME_SCALE}
		fi
	else
		vt_calibrate
		s=$(awk -v c="$VT_CAL_MS" -v r="$VT_REF_MS" -v f="$VT_FLOOR" \
			'BEGIN{v = f * c / r; if (v < f) v = f; printf "%.1f", int(v * 10 + 0.999) / 10}')
		VT_SCALE_WHY="calibration: $VT_CAL_MS ms here, $VT_REF_MS ms on the reference machine; floor $VT_FLOOR"
	fi
	export VBUS_TIME_SCALE=$s VT_SCALE_WHY
}

# _vt_milli VAR X: the decimal X (15, 0.5, 6.6) in thousandths into VAR, by bash alone (every
# program run costs about 0.1 s in the TCG VM, and these run in every wait loop); false
# when X is not such a number
_vt_milli() {
	[[ $2 =~ ^([0-9]{0,9})\.?([0-9]*)$ ]] && [ -n "$2" ] || return 1
	local _vt_f=${BASH_REMATCH[2]}000
	printf -v "$1" '%d' $(( 10#${BASH_REMATCH[1]:-0} * 1000 + 10#${_vt_f:0:3} ))
}

# _vt_scaled_us VAR N: N seconds times the scale, in microseconds, into VAR (awk only for
# an N or a scale that is not a plain decimal)
_vt_scaled_us() {
	local _vt_n _vt_s
	if _vt_milli _vt_n "$2" && _vt_milli _vt_s "${VBUS_TIME_SCALE:-$VT_FLOOR}"; then
		printf -v "$1" '%d' $(( _vt_n * _vt_s ))
	else
		printf -v "$1" '%d' "$(awk -v n="$2" -v s="${VBUS_TIME_SCALE:-$VT_FLOOR}" \
			'BEGIN{printf "%d", n * s * 1000000}')"
	fi
}

vt_secs() {
	local u v
	_vt_scaled_us u "$1"
	v=$(( (u + 999999) / 1000000 ))
	echo $(( v < 1 ? 1 : v ))
}

vt_deadline() {
	local t u
	_vt_now t
	_vt_scaled_us u "$1"
	echo $(( t + u ))
}

vt_past() { local t; _vt_now t; [ "$t" -ge "$1" ]; }

vt_until() {
	local end
	end=$(vt_deadline "$1")
	shift
	until "$@"; do
		vt_past "$end" && return 1
		sleep 0.1
	done
}

vt_wait_for() {
	local file=$1 pat=$2 end pid=${4:-}
	end=$(vt_deadline "$3")
	until grep -Eq -- "$pat" "$file" 2>/dev/null; do
		if vt_past "$end" || { [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; }; then
			grep -Eq -- "$pat" "$file" 2>/dev/null && return 0
			return 1
		fi
		sleep 0.1
	done
}

# Sourced: compute the factor now unless the caller has it (tests/run exports it) or sets
# VT_NO_AUTO to call vt_scale itself.
# Run as a script: print this machine's calibration.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	unset VBUS_TIME_SCALE
	vt_scale && echo "VBUS_TIME_SCALE=$VBUS_TIME_SCALE ($VT_SCALE_WHY)"
	exit
fi
[ -n "${VT_NO_AUTO:-}" ] || vt_scale || export VBUS_TIME_SCALE=$VT_FLOOR
