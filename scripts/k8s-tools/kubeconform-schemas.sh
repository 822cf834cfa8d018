#!/usr/bin/env bash
# Writes JSON schemas for kubeconform, with no network: every built-in kind from the /openapi/v2 of a
# kube-apiserver at the pinned version (fetched once by starting etcd + kube-apiserver, then cached in
# ${DAFTKA_TOOLS_CACHE:-$HOME/.cache/daftka-tools}/schemas/), plus every CRD in a directory (default crds/).
# Prints the value for `kubeconform -schema-location` (use with or without -strict).
#
# Usage: scripts/k8s-tools/kubeconform-schemas.sh [--crds DIR] [--out DIR]
#   e.g. loc="$(scripts/k8s-tools/kubeconform-schemas.sh --out /tmp/schemas)"
#        helm template helm/daftka | kubeconform -strict -summary -schema-location "$loc" -
# Needs the tools of scripts/k8s-tools/build.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec node_modules/.bin/tsx test/helpers/k8s-schemas.ts "$@"
