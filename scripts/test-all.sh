#!/usr/bin/env bash
# Everything CI runs (`npm test`): set-up, static checks, then every test tier in order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --k8s
step() { echo; echo "==> $*"; "$@"; }
step npm run --silent lint
step npm run --silent test:unit
step npm run --silent test:sim
step npm run --silent test:integration
step npm run --silent test:e2e
echo; echo "all test tiers passed"
