#!/usr/bin/env bash
# The performance harness (issue 6): builds the release binary and the bench
# program, generates synthetic configs and states of 1,000, 10,000 and
# 100,000 members, and prints a table of plan / parse-only / render / apply /
# curl-loop figures (medians) with the targets checked.
#
#   scripts/bench.sh                 # everything, 5 runs each
#   scripts/bench.sh --runs 3        # fewer runs
#   scripts/bench.sh --sizes 1000,10000 --apply-sizes 1000 --curl 200
#   scripts/bench.sh --runs 1 --sizes '' --apply-sizes '' --curl 0 --scim 10000
#                                    # SCIM only, against a real scim2-server
#                                    # (SCIM2_SERVER_BIN, or the one
#                                    # scripts/test.sh installs in target/)
#
# Needs only cargo. Uses /usr/bin/time for peak RSS when present (installs
# GNU time with apt-get when missing and possible), else polls
# /proc/PID/status; uses curl for the naive loop when present, else a
# one-process-per-request Rust client. The exit code is 0 when every target
# holds, 1 otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

if [ ! -x /usr/bin/time ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "GNU time not found; trying apt-get install -y time (falls back to /proc polling offline)" >&2
  apt-get install -y -qq time >/dev/null 2>&1 || true
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo bench --locked --manifest-path "$root/Cargo.toml" --bench perf -- "$@" | tee "$out"
grep -q '^All targets met.$' "$out"
