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
