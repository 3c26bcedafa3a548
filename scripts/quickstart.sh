#!/usr/bin/env bash
# The quickstart: build memberctl, then plan → apply → plan on the built-in
# sandbox provider, in a scratch copy of examples/quickstart. No account,
# no env vars, no network.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/memberctl"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/examples/quickstart/memberctl.yaml" "$work/"
cd "$work"
drifted=jane.doe@example.com

echo "\$ memberctl plan --detailed-exitcode"
set +e; "$bin" plan --detailed-exitcode; code=$?; set -e
[ "$code" -eq 2 ] || { echo "expected exit 2 (changes present), got $code"; exit 1; }

echo; echo "\$ memberctl apply --auto-approve"
"$bin" apply --auto-approve

echo; echo "\$ memberctl plan --detailed-exitcode"
"$bin" plan --detailed-exitcode

echo; echo "The sandbox outbox ($work/outbox.jsonl) received:"
cut -c1-120 outbox.jsonl
echo; echo "Quickstart converged: plan → apply → plan shows no changes."

# Drift: someone removes a member at the service, behind memberctl's back.
# The sandbox lists its outbox, so a line appended to it plays that change.
echo; echo "\$ # someone removes $drifted at the service, outside memberctl"
printf '{"op":"remove","provider":"sandbox","email":"%s"}\n' "$drifted" >> outbox.jsonl
echo "\$ memberctl plan --detailed-exitcode     # no provider calls: the state still says all is well"
"$bin" plan --detailed-exitcode
echo; echo "\$ memberctl plan --refresh --detailed-exitcode"
set +e; "$bin" plan --refresh --detailed-exitcode; code=$?; set -e
[ "$code" -eq 2 ] || { echo "expected exit 2 (drift planned back), got $code"; exit 1; }
echo; echo "\$ memberctl apply --refresh --auto-approve"
"$bin" apply --refresh --auto-approve
echo; echo "\$ memberctl refresh --check"
"$bin" refresh --check
echo; echo "Drift seen with --refresh and repaired: refresh --check is back in sync."
