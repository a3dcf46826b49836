#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [NAME...] [-libfuzzer_flag=...]   (SECONDS default 60)
#
# For each tests/fuzz/fuzz_<name>.c (or only the NAMEs given, e.g. "http"):
#   - builds build-fuzz/fuzz_<name> with the system clang:
#       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 -Iinclude
#     linked with all src/**/*.c except src/main.c (and the pkg-config libraries
#     listed in build.zig);
#   - copies its seed corpus tests/fuzz/corpus/<name>/ to build-fuzz/corpus/<name>/
#     (a fresh scratch copy: the committed corpus stays hand-made);
#   - runs it for SECONDS with -dict=tests/fuzz/<name>.dict if that file exists.
# Drivers run one after another; libFuzzer's chatter goes to
# build-fuzz/fuzz_<name>.log. Prints one line per driver; on a crash, leak, timeout
# or OOM prints the log's tail and the crash artifact path
# (build-fuzz/artifacts/<name>/..., reset on each run) and exits 1 after the
# remaining drivers ran.
# Reproduce a crash: build-fuzz/fuzz_<name> build-fuzz/artifacts/<name>/crash-...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

secs=60
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
    secs=$1
    shift
fi
only=()
extra=()
for a in "$@"; do
    if [[ "$a" == -* ]]; then extra+=("$a"); else only+=("${a#fuzz_}"); fi
done

OUT=build-fuzz
CC="${CC:-clang}"

die() {
    echo "fuzz: $*" >&2
    exit 1
}

command -v "$CC" >/dev/null 2>&1 || die "$CC not found (apt-get install clang libclang-rt-14-dev, or run ./dev.sh setup)"

CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -fno-strict-aliasing -g -O1 -fno-omit-frame-pointer -Iinclude)
SAN_LIST=address,undefined
NO_RECOVER=-fno-sanitize-recover=all

mapfile -t PKGS < <(sed -n '/pkg-config:begin/,/pkg-config:end/s/^[[:space:]]*"\([^"]*\)".*/\1/p' build.zig)
PKG_CFLAGS=()
PKG_LIBS=()
if ((${#PKGS[@]})); then
    read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags "${PKGS[@]}")" || die "pkg-config --cflags ${PKGS[*]} failed"
    read -r -a PKG_LIBS <<<"$(pkg-config --libs "${PKGS[@]}")" || die "pkg-config --libs ${PKGS[*]} failed"
fi

mapfile -t drivers < <(find tests/fuzz -maxdepth 1 -type f -name 'fuzz_*.c' | LC_ALL=C sort)
((${#drivers[@]})) || die "no drivers found (tests/fuzz/fuzz_*.c)"
mapfile -t core_src < <(find src -type f -name '*.c' ! -path src/main.c | LC_ALL=C sort)

mkdir -p "$OUT/obj"
rm -f "$OUT"/obj/*.o "$OUT/libringcast_core.a"

# Core objects once, instrumented for coverage (fuzzer-no-link), in parallel.
objs=()
pids=()
for f in "${core_src[@]}"; do
    o="$OUT/obj/$(echo "${f%.c}" | tr '/' '_').o"
    objs+=("$o")
    "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link,"$SAN_LIST" "$NO_RECOVER" "${PKG_CFLAGS[@]}" -c "$f" -o "$o" >"$o.log" 2>&1 &
    pids+=($!)
    if ((${#pids[@]} >= $(nproc))); then
        wait "${pids[0]}" || true
        pids=("${pids[@]:1}")
    fi
done
wait || true
for o in "${objs[@]}"; do
    if [[ ! -f "$o" ]]; then
        cat "$o.log" >&2
        die "compiling ${o##*/} failed"
    fi
done
core=()
if ((${#objs[@]})); then
    ar rcs "$OUT/libringcast_core.a" "${objs[@]}"
    core=("$OUT/libringcast_core.a")
fi

failed=0
ran=0
for drv in "${drivers[@]}"; do
    base="$(basename "$drv" .c)" # fuzz_http
    name="${base#fuzz_}"         # http
    if ((${#only[@]})); then
        keep=0
        for n in "${only[@]}"; do [[ "$n" == "$name" ]] && keep=1; done
        ((keep)) || continue
    fi
    ran=$((ran + 1))
    bin="$OUT/$base"
    log="$OUT/$base.log"
    rm -f "$bin"
    if ! "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer,"$SAN_LIST" "$NO_RECOVER" "${PKG_CFLAGS[@]}" "$drv" \
        ${core[@]+"${core[@]}"} "${PKG_LIBS[@]}" -pthread -o "$bin" >"$log" 2>&1; then
        echo "FAIL $base: build failed"
        sed 's/^/    /' "$log"
        failed=1
        continue
    fi

    corpus="$OUT/corpus/$name"
    artifacts="$OUT/artifacts/$name/"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    [[ -d "tests/fuzz/corpus/$name" ]] && cp -R "tests/fuzz/corpus/$name/." "$corpus/"
    args=(-max_total_time="$secs" -artifact_prefix="$artifacts" -print_final_stats=1)
    [[ -f "tests/fuzz/$name.dict" ]] && args+=(-dict="tests/fuzz/$name.dict")

    set +e
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        "$bin" "${args[@]}" ${extra[@]+"${extra[@]}"} "$corpus" >"$log" 2>&1 </dev/null
    status=$?
    set -e

    runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)"
    if ((status == 0)); then
        echo "PASS $base: ${runs:-done} (corpus $(find "$corpus" -type f | wc -l) files, log $log)"
    else
        echo "FAIL $base: libFuzzer exit $status (log $log)"
        # The sanitizer/libFuzzer report, without ASan's shadow-byte map.
        report="$(awk '/ERROR|runtime error|deadly signal|[Tt]imeout|out-of-memory|leak/ {p = 1}
                       /^Shadow bytes around/ {s = 1}
                       /==ABORTING/ {s = 0}
                       p && !s' "$log" | head -n 60)"
        [[ -n "$report" ]] || report="$(tail -n 30 "$log")"
        # shellcheck disable=SC2001
        sed 's/^/    /' <<<"$report"
        for a in "$artifacts"*; do
            [[ -e "$a" ]] && echo "    artifact: $a  (reproduce: $bin $a)"
        done
        failed=1
    fi
done

((ran)) || die "no driver matched: ${only[*]}"
exit "$failed"
