#!/bin/bash
# timeout: 300
# Build every libFuzzer target in the tree (*/fuzz/fuzz-*.c, extra sources named on a
# `fuzz-sources:` line, libraries on a `fuzz-libs:` line, default -libverbs; a
# `fuzz-rss-mb:` line raises libFuzzer's memory limit from 1024 MB) into
# build/fuzz-test/ (make fuzz: build/fuzz/, VBUS_FUZZ_OUT) with clang, and run each for
# ${VBUS_FUZZ_SECONDS:-5} seconds (make fuzz: 60; two targets at a time), starting from tests/fuzz-corpus/TARGET/ (the seeds and
# merged inputs). Any crash, leak or sanitizer report fails, and so does one input that runs
# past 10 s (times VBUS_TIME_SCALE, tests/lib/time.sh); so does a kept crash input
# (tests/fuzz-corpus/TARGET/crashes/) that still crashes. One line per target: runs, cov
# and ft (libFuzzer's coverage counters and features, from its last status line), corpus
# size, findings. A target that aborts on a broken promise says which on a line starting
# with its name (`fuzz-wqe: broken promise: ...`), which the report shows.
# `make fuzz` runs this too (docs/testing.md, Fuzzing), with:
#   VBUS_FUZZ_SECONDS=N   seconds per target
#   VBUS_FUZZ_TARGETS=..  only these targets (names, e.g. "fuzz-wqe fuzz-ioq")
#   VBUS_FUZZ_MERGE=1     merge the new inputs that add coverage into tests/fuzz-corpus/TARGET
#   VBUS_FUZZ_KEEP=1      copy each crash input into tests/fuzz-corpus/TARGET/crashes/, with
#                         a note (NAME.txt: target, commit, how to reproduce, the report)
top=${VBUS_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top/tests/lib/time.sh"
secs=${VBUS_FUZZ_SECONDS:-5}
command -v clang >/dev/null || { echo "clang is not installed (make deps)"; exit 77; }
# make test's short runs and make fuzz's long ones build and work in directories of their
# own: a make test run beside a make fuzz once rebuilt the long run's targets, emptied its
# corpus directory and cut its logs.
out=${VBUS_FUZZ_OUT:-$top/build/fuzz-test}
mkdir -p "$out"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$out/probe.c"
clang -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null ||
	{ echo "clang has no libFuzzer runtime (libclang-rt-14-dev; make deps)"; exit 77; }

# report NAME LOG: the sanitizer's or libFuzzer's report, from the target's own line if any
report() {
	sed -n "/^$1: \|^==[0-9]*==\|runtime error: /,/^SUMMARY/p" "$2" | grep -v '^NOTE: \|^      Combine'
}

# keep_crash NAME ARTIFACT LOG: the input into tests/fuzz-corpus/NAME/crashes/, and a note
keep_crash() {
	local dir=$top/tests/fuzz-corpus/$1/crashes f
	f=$(basename "$2")
	mkdir -p "$dir"
	cp "$2" "$dir/$f"
	{
		echo "target: $1 ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown), $secs s run)"
		echo "reproduce: tests/unit/fuzz.sh builds it; ${out#"$top"/}/$1 tests/fuzz-corpus/$1/crashes/$f"
		echo "input ($(stat -c %s "$2") bytes): $(od -An -tx1 -v "$2" | head -n 8 | tr -s ' \n' ' ')"
		echo "report:"
		report "$1" "$3" | head -n 60
	} >"$dir/$f.txt"
	echo "     kept: tests/fuzz-corpus/$1/crashes/$f (+ .txt note)"
}

# one SRC NAME: build, replay and fuzz one target; its lines on stdout, then a last line
# "#result RAN FOUND FAIL" (targets run two at a time: their outputs are shown in order).
one() {
	local src=$1 name=$2 fail=0 ran=0 found=0 extra libs srcs f g corpus work arts kept start
	local rc took log runs last cov ft corp seeds stats crashes m added rss
	extra=$(sed -n 's|.*fuzz-sources:\(.*\)\*/.*|\1|p' "$src" | head -n1)
	# the libraries: -libverbs, unless a `fuzz-libs:` line names others (or none)
	libs=-libverbs
	grep -q 'fuzz-libs:' "$src" && libs=$(sed -n 's|.*fuzz-libs:\(.*\)\*/.*|\1|p' "$src" | head -n1)
	rss=$(sed -n 's|.*fuzz-rss-mb: *\([0-9]*\).*|\1|p' "$src" | head -n1)
	rss=${rss:-1024}
	srcs=()
	# each word is a path under the top; globs allowed (verbs-host/vrdma/[a-z]*.c)
	for f in $extra; do for g in "$top"/$f; do srcs+=("$g"); done; done
	if ! clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -I"$top/include" -I"$top/connector" \
		-I"$top/verbs-host" "$src" "${srcs[@]}" -o "$out/$name" $libs -pthread \
		2>"$out/$name.build.log"; then
		echo "FAIL: $name does not build"; cat "$out/$name.build.log"; echo "#result 0 0 1"; return
	fi
	ran=$((ran + 1))
	corpus=$top/tests/fuzz-corpus/$name
	work=$out/$name.corpus
	arts=$out/$name.artifacts
	rm -rf "$work" "$arts"; mkdir -p "$work" "$arts"
	cp "$corpus"/* "$work"/ 2>/dev/null	# files only: crashes/ is replayed apart

	# Kept crash inputs first: each must run clean now (the bug fixed), or this fails.
	kept=()
	for f in "$corpus"/crashes/*; do
		[ -f "$f" ] && [ "${f%.txt}" = "$f" ] && kept+=("$f")
	done
	if [ ${#kept[@]} -gt 0 ] && ! "$out/$name" -timeout="$(vt_secs 10)" -rss_limit_mb="$rss" \
		"${kept[@]}" >"$out/$name.replay.log" 2>&1; then
		echo "FAIL: $name: a kept crash input still crashes (tests/fuzz-corpus/$name/crashes/):"
		report "$name" "$out/$name.replay.log" | head -n 40
		fail=1 found=$((found + 1))
		{ echo "#result $ran $found $fail"; return; }
	fi

	start=$EPOCHSECONDS
	"$out/$name" -max_total_time="$secs" -timeout="$(vt_secs 10)" -rss_limit_mb="$rss" \
		-print_final_stats=1 -artifact_prefix="$arts/" "$work" >"$out/$name.log" 2>&1
	rc=$? took=$((EPOCHSECONDS - start))
	log=$out/$name.log
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
	seeds=$(find "$corpus" -maxdepth 1 -type f 2>/dev/null | wc -l)
	stats="${runs:-?} runs in $took s, cov ${cov:-?} ft ${ft:-?}, corpus ${corp:-?} (from $seeds kept)"
	crashes=$(find "$arts" -type f | sort)
	if [ $rc -eq 0 ] && [ -z "$crashes" ]; then
		echo "ok   $name: $stats, no crash"
	else
		echo "FAIL: $name: $stats, found a crash:"
		for f in $crashes; do echo "     $f ($(stat -c %s "$f") bytes)"; done
		report "$name" "$log" | head -n 40
		[ -n "$crashes" ] || tail -n 20 "$log"
		if [ "$VBUS_FUZZ_KEEP" = 1 ]; then
			for f in $crashes; do keep_crash "$name" "$f" "$log"; done
		else
			echo "     (make fuzz keeps the input in tests/fuzz-corpus/$name/crashes/; log: $log)"
		fi
		fail=1 found=$((found + 1))
	fi

	# New inputs that add coverage, merged into a copy of the corpus (-merge=1 writes them
	# there under their SHA-1), then copied into tests/fuzz-corpus/NAME.
	if [ "$VBUS_FUZZ_MERGE" = 1 ]; then
		m=$out/$name.merge
		rm -rf "$m"; mkdir -p "$m" "$corpus"
		cp "$corpus"/* "$m"/ 2>/dev/null
		if "$out/$name" -merge=1 -timeout="$(vt_secs 10)" -rss_limit_mb="$rss" "$m" "$work" \
			>"$out/$name.merge.log" 2>&1; then
			added=0
			for f in "$m"/*; do
				[ -e "$corpus/$(basename "$f")" ] && continue
				cp "$f" "$corpus"/ && added=$((added + 1))
			done
			echo "     merged: $added new inputs into tests/fuzz-corpus/$name ($(find "$corpus" -maxdepth 1 -type f | wc -l) in all)"
		else
			echo "     merge failed (log: $out/$name.merge.log)"; fail=1
		fi
	fi
	echo "#result $ran $found $fail"
}

fail=0 ran=0 found=0 names=()
par=$(nproc 2>/dev/null || echo 1)
[ "$par" -gt 2 ] && par=2
for src in "$top"/*/fuzz/fuzz-*.c "$top"/*/*/fuzz/fuzz-*.c; do
	[ -f "$src" ] || continue
	name=$(basename "$src" .c)
	if [ -n "$VBUS_FUZZ_TARGETS" ]; then
		case " $VBUS_FUZZ_TARGETS " in *" $name "*) ;; *) continue ;; esac
	fi
	one "$src" "$name" >"$out/$name.out" 2>&1 &
	names+=("$name")
	while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n; done
done
wait
for name in "${names[@]}"; do
	grep -v '^#result ' "$out/$name.out"
	read -r _ r f x < <(grep '^#result ' "$out/$name.out" || echo "#result 0 0 1")
	ran=$((ran + r)) found=$((found + f))
	[ "$x" = 0 ] || fail=1
done
echo "fuzz: $ran targets, $secs s each, $found with findings"
exit $fail
