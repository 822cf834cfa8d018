#!/usr/bin/env bash
# Builds the Daftka image from the repository's Dockerfile with Debian's podman, with no container
# registry: the base image (the Dockerfile's NODE_IMAGE) is made here from Debian's package mirror
# (debootstrap --variant=minbase bookworm) plus this machine's Node 20 and its CA bundle, then
# `podman build --isolation=chroot` runs the Dockerfile unchanged. Optionally exports the result.
#
# Usage: scripts/image/build.sh [--tag TAG] [--export DIR]
#   --tag TAG     image tag (default localhost/daftka:dev)
#   --export DIR  also `podman create` + `podman export` the image into DIR/rootfs and write its
#                 config (user, env, workdir, entrypoint, cmd) to DIR/config.json
# Needs root, podman and debootstrap (scripts/ensure-deps.sh --k8s installs both).
# Environment:
#   DAFTKA_TOOLS_CACHE  where the debootstrapped base is kept between runs (default $HOME/.cache/daftka-tools)
#   DEBIAN_MIRROR       (default http://deb.debian.org/debian)
#
# Why the host's CA bundle goes into the base: npm (in the Dockerfile's `npm ci`) must trust what the
# host trusts; on machines that reach the registry through a TLS-inspecting proxy only the host's
# bundle has that proxy's CA. NODE_EXTRA_CA_CERTS adds it to Node's own roots.
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=localhost/daftka:dev
export_dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --export) export_dir="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "image/build.sh: $tool missing (scripts/ensure-deps.sh --k8s installs it)" >&2; exit 1; }
done

node_bin="$(command -v node)"
node_version="$(node -p process.versions.node)"
case "$node_version" in 20.*) ;; *) echo "image/build.sh: host Node is $node_version; the image needs Node 20" >&2; exit 1 ;; esac
npm_dir="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)" # …/node_modules/npm
ca_bundle=/etc/ssl/certs/ca-certificates.crt
base="localhost/daftka-base/node:${node_version}-bookworm-slim"

cache="${DAFTKA_TOOLS_CACHE:-$HOME/.cache/daftka-tools}/image-base"
minbase="$cache/bookworm-minbase.tar"
if ! podman image exists "$base"; then
  mkdir -p "$cache"
  if [ ! -f "$minbase" ]; then
    echo "image/build.sh: debootstrap bookworm (minbase) into $cache"
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase bookworm "$cache/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1 \
      || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    rm -rf "$cache/rootfs/var/cache/apt/archives/"*.deb "$cache/rootfs/var/lib/apt/lists/"*
    tar -C "$cache/rootfs" -cf "$minbase.tmp" . && mv "$minbase.tmp" "$minbase"
    rm -rf "$cache/rootfs"
  fi
  echo "image/build.sh: base image $base (Debian bookworm minbase + Node $node_version from $node_bin)"
  stage="$(mktemp -d)"
  trap 'rm -rf "$stage"' EXIT
  tar -C "$stage" -xf "$minbase"
  install -m 0755 "$node_bin" "$stage/usr/bin/node"
  mkdir -p "$stage/usr/lib/node_modules" "$stage/etc/ssl/certs"
  cp -a "$npm_dir" "$stage/usr/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/bin/npx"
  cp "$ca_bundle" "$stage/etc/ssl/certs/ca-certificates.crt"
  tar -C "$stage" -c . | podman import --quiet \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["node"]' - "$base" >/dev/null
  rm -rf "$stage"
  trap - EXIT
fi

echo "image/build.sh: podman build -t $tag (NODE_IMAGE=$base)"
podman build --isolation=chroot --build-arg "NODE_IMAGE=$base" -t "$tag" .
# Each source change leaves the previous build's layers behind, untagged: drop those older than a day
# (younger ones are the layer cache of the next build).
podman image prune --force --filter until=24h >/dev/null || true

if [ -n "$export_dir" ]; then
  echo "image/build.sh: exporting $tag to $export_dir"
  rm -rf "$export_dir/rootfs"
  mkdir -p "$export_dir/rootfs"
  ctr="$(podman create "$tag")"
  podman export "$ctr" | tar -C "$export_dir/rootfs" -x
  podman rm "$ctr" >/dev/null
  podman image inspect --format '{{json .Config}}' "$tag" >"$export_dir/config.json"
fi
