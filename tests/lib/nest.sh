# tests/lib/nest.sh: what the nesting tests (guest-nest, guest-nest-pt) run from nested
# guests. Each needs $ig (tests/guest/integrity), $tmp (a scratch directory), PT_PORT, and
# sets fail=1 on a failure; tests/lib/pingpong.sh (bench/lib/perftest.sh) sourced first.

# ig_pair WHAT SERVER-DEV CLIENT-WRAP-ARRAY [SERVER-WRAP...]: the integrity program (IG_T
# seconds, 5), its client a guest under the wrapper named, its server on SERVER-DEV under
# the rest.
ig_pair() {
	local what=$1 sdev=$2 seed port spid
	local -n cw=$3
	shift 3
	seed=${VBUS_IG_SEED:-$(( (RANDOM << 16) | RANDOM ))}
	port=$PT_PORT; PT_PORT=$((PT_PORT + 1))
	# the server outlives the client's limit; the client's lines come as it prints them
	timeout -k 5 "$(vt_secs 150)" "$@" "$ig" -d "$sdev" -g "$VBUS_GID_INDEX" -p "$port" >"$tmp/igs" 2>&1 &
	spid=$!
	if pt_wait_listen "$port" "$spid" &&
	   timeout -k 5 "$(vt_secs 90)" "${cw[@]}" stdbuf -oL "$ig" -d vrdma0 -g "$VBUS_GID_INDEX" -p "$port" \
		-s "$seed" -T "${IG_T:-5}" -A 20 ${VBUS_IG_ARGS:-} "$VBUS_IP" >"$tmp/igc" 2>&1 &&
	   wait "$spid"; then
		echo "ok   integrity (seed $seed), $what: $(grep -h 'rounds in' "$tmp/igc")"
	else
		echo "FAIL integrity (seed $seed), $what"
		sed 's/^/  client| /' "$tmp/igc"; sed 's/^/  server| /' "$tmp/igs"; fail=1
		kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
	fi
}

# perf_runs DEPTH WRAP-ARRAY "TEST ARGS... FIGURE"...: perftest from a nested client (under
# the wrapper named) to a native server, each case's figure shown.
perf_runs() {
	local d=$1 args
	local -n pw=$2
	shift 2
	PT_CLIENT_WRAP=("${pw[@]}") PT_CLIENT_DEV=vrdma0 PT_SERVER_WRAP=() PT_SERVER_DEV=$VBUS_RXE
	for args in "$@"; do
		# shellcheck disable=SC2086
		set -- $args
		if pt_run "$1" "$tmp/pto" "${@:2:$#-2}" >"$tmp/ptlog" 2>&1 && v=$(pt_figure "$tmp/pto" "${!#}"); then
			echo "ok   ${*:1:$#-1}, depth-$d guest to native: ${!#} $v"
		else
			echo "FAIL ${*:1:$#-1}, depth-$d guest to native"; tail -n 20 "$tmp/ptlog" "$tmp/pto" 2>/dev/null; fail=1
		fi
	done
}
PERF3=("ib_write_lat -n 500 t_typical_us" "ib_send_lat -n 500 t_typical_us" "ib_write_bw -s 65536 -n 200 bw_avg_MBps")
