#!/usr/bin/env bash
# tests/sanitize.sh [unit|server|all]  (default: unit)
#
# Builds with the SYSTEM clang (zig cc cannot link ASan):
#   unit    every tests/unit/*/test_*.c, each linked with all src/**/*.c except
#           src/main.c, under -fsanitize=address,undefined -fno-sanitize-recover=all
#           -g -O1 into build-asan/, runs each (cwd = repo root); one line per test,
#           a failing test's output is printed; exits non-zero on any failure.
#   server  build-asan/ringcast from all of src/ (main.c included) with
#           -fsanitize=address (LeakSanitizer included) -g -O1, for leak tests.
#
# Compiler warnings and output are shown only when something fails.
# System libraries: the pkg-config list in build.zig (between the
# "pkg-config:begin/end" markers) is used, so adding one there is enough.
# Env: CC (default clang), SAN_JOBS (parallel compiles, default nproc),
#      SAN_TIMEOUT (seconds per test binary, default 600).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

mode="${1:-unit}"
OUT=build-asan
CC="${CC:-clang}"
JOBS="${SAN_JOBS:-$(nproc)}"
TEST_TIMEOUT="${SAN_TIMEOUT:-600}"

die() {
    echo "sanitize: $*" >&2
    exit 1
}

command -v "$CC" >/dev/null 2>&1 || die "$CC not found (apt-get install clang, or run ./dev.sh setup)"

BASE_CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -fno-strict-aliasing -g -O1 -fno-omit-frame-pointer -Iinclude)

mapfile -t PKGS < <(sed -n '/pkg-config:begin/,/pkg-config:end/s/^[[:space:]]*"\([^"]*\)".*/\1/p' build.zig)
PKG_CFLAGS=()
PKG_LIBS=()
if ((${#PKGS[@]})); then
    read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags "${PKGS[@]}")" || die "pkg-config --cflags ${PKGS[*]} failed"
    read -r -a PKG_LIBS <<<"$(pkg-config --libs "${PKGS[@]}")" || die "pkg-config --libs ${PKGS[*]} failed"
fi

# Sources, sorted, relative to the repo root.
mapfile -t ALL_SRC < <(find src -type f -name '*.c' | LC_ALL=C sort)
CORE_SRC=()
for f in "${ALL_SRC[@]}"; do
    [[ "$f" == src/main.c ]] || CORE_SRC+=("$f")
done

# run_jobs LOGDIR -- CMD1 ... ; each CMD is a single string eval'ed in parallel
# (at most $JOBS at once). On any failure prints the failing commands' logs
# and returns 1.
JOB_CMDS=()
run_jobs() {
    local logdir=$1 i=0 running=0 failed=0
    mkdir -p "$logdir"
    rm -f "$logdir"/*.log "$logdir"/*.failed
    for cmd in "${JOB_CMDS[@]}"; do
        (eval "$cmd") >"$logdir/$i.log" 2>&1 || { echo "$cmd" >"$logdir/$i.failed"; } &
        i=$((i + 1))
        running=$((running + 1))
        if ((running >= JOBS)); then
            wait -n || true
            running=$((running - 1))
        fi
    done
    wait
    for ((j = 0; j < i; j++)); do
        if [[ -e "$logdir/$j.failed" ]]; then
            failed=1
            echo "sanitize: build failed: $(<"$logdir/$j.failed")" >&2
            cat "$logdir/$j.log" >&2
        fi
    done
    JOB_CMDS=()
    return "$failed"
}

q() { printf '%q ' "$@"; }

# compile_objs OBJDIR ARRAYNAME SANFLAGS... : compiles every file of SRCS into
# OBJDIR/<path_with_underscores>.o and stores the object paths in ARRAYNAME.
compile_objs() {
    local objdir=$1
    shift
    local -n _objs=$1
    shift
    local f o
    rm -rf "$objdir"
    mkdir -p "$objdir"
    _objs=()
    for f in "${SRCS[@]}"; do
        o="$objdir/$(echo "${f%.c}" | tr '/' '_').o"
        _objs+=("$o")
        JOB_CMDS+=("$(q "$CC" "${BASE_CFLAGS[@]}" "$@" "${PKG_CFLAGS[@]}" -c "$f" -o "$o")")
    done
    run_jobs "$objdir/logs"
}

unit() {
    # shellcheck disable=SC2054 # the comma is part of the flag
    local SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)
    local objs=() tests=() t name bin pass=0 fail=0 status
    mapfile -t tests < <(find tests/unit -mindepth 2 -type f -name 'test_*.c' | LC_ALL=C sort)
    ((${#tests[@]})) || die "no unit tests found (tests/unit/*/test_*.c)"
    mkdir -p "$OUT"

    SRCS=("${CORE_SRC[@]}")
    compile_objs "$OUT/obj" objs "${SAN[@]}" || die "compiling src/ failed"
    rm -f "$OUT/libringcast_core.a"
    if ((${#objs[@]})); then
        ar rcs "$OUT/libringcast_core.a" "${objs[@]}"
    fi
    local core=()
    [[ -f "$OUT/libringcast_core.a" ]] && core=("$OUT/libringcast_core.a")

    local bins=()
    for t in "${tests[@]}"; do
        name="test_$(basename "$(dirname "$t")")_$(basename "$t" .c | sed 's/^test_//')"
        bin="$OUT/$name"
        bins+=("$bin")
        rm -f "$bin"
        JOB_CMDS+=("$(q "$CC" "${BASE_CFLAGS[@]}" "${SAN[@]}" "${PKG_CFLAGS[@]}" -Itests/unit "$t" ${core[@]+"${core[@]}"} "${PKG_LIBS[@]}" -pthread -o "$bin")")
    done
    run_jobs "$OUT/logs-tests" || die "compiling unit tests failed"

    for bin in "${bins[@]}"; do
        set +e
        ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}" \
            UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
            timeout "$TEST_TIMEOUT" "$bin" >"$bin.log" 2>&1 </dev/null
        status=$?
        set -e
        if ((status == 0)); then
            echo "PASS $bin"
            pass=$((pass + 1))
        else
            if ((status == 124)); then
                echo "FAIL $bin (timed out after ${TEST_TIMEOUT}s)"
            else
                echo "FAIL $bin (exit $status)"
            fi
            sed 's/^/    /' "$bin.log"
            fail=$((fail + 1))
        fi
    done
    echo "sanitize: $pass passed, $fail failed"
    ((fail == 0))
}

server() {
    local SAN=(-fsanitize=address)
    local objs=()
    [[ -f src/main.c ]] || die "src/main.c is missing"
    mkdir -p "$OUT"
    SRCS=("${ALL_SRC[@]}")
    compile_objs "$OUT/obj-server" objs "${SAN[@]}" || die "compiling src/ failed"
    rm -f "$OUT/ringcast"
    JOB_CMDS+=("$(q "$CC" "${SAN[@]}" -g "${objs[@]}" "${PKG_LIBS[@]}" -pthread -o "$OUT/ringcast")")
    run_jobs "$OUT/logs-server" || die "linking $OUT/ringcast failed"
    echo "built $OUT/ringcast (-fsanitize=address)"
}

case "$mode" in
unit) unit ;;
server) server ;;
all)
    rc=0
    unit || rc=1
    server || rc=1
    exit "$rc"
    ;;
*) die "usage: tests/sanitize.sh [unit|server|all]" ;;
esac
