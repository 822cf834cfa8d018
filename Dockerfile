# syntax=docker/dockerfile:1
# One image, three programs. The default command runs a replica (what the operator's StatefulSets
# start); the chart runs the others with `args`:
#   replica   node dist/replica/main.js    (default CMD)
#   gateway   node dist/gateway/main.js
#   operator  node dist/operator/main.js
# Build: docker build -t daftka:dev .   (docs/operations/helm.md, "The image")
# Without a registry: scripts/image/build.sh (podman, NODE_IMAGE made locally); CI builds it so and
# runs each program from the image (test/e2e/image.test.ts).

ARG NODE_IMAGE=node:20.19-bookworm-slim

# ---- deps: production dependencies only (the RocksDB binding's native part included) ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /src
# @nxtedition/rocksdb ships a prebuilt binary for linux-x64 (glibc); on other platforms (arm64) it
# builds from source with python3/make/g++, which takes a while. Not version-pinned: the base image pins the Debian release,
# and nothing from this stage but node_modules reaches the runtime image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---- build: compile TypeScript to dist/ (npm run build = tsc -p tsconfig.build.json) ----
FROM deps AS build
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
# The three programs' folders and what they import, nothing else: tsconfig.build.json compiles
# exactly these (drills, dev scripts, sre/ and test/ are not in the image).
COPY common ./common
COPY protocol ./protocol
COPY replica ./replica
COPY gateway ./gateway
COPY operator ./operator
RUN npm run build

# ---- runtime: production dependencies and dist/ only, as a non-root user ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=deps --chown=root:root /src/package.json ./package.json
COPY --from=deps --chown=root:root /src/node_modules ./node_modules
COPY --from=build --chown=root:root /src/dist ./dist
# The chart and the operator run every pod as 10001 with a read-only root filesystem; replica data
# goes to the PVC (/var/lib/daftka), scratch to an emptyDir on /tmp.
RUN groupadd --system --gid 10001 daftka \
 && useradd --system --uid 10001 --gid daftka --home-dir /nonexistent --shell /usr/sbin/nologin daftka \
 && mkdir -p /var/lib/daftka \
 && chown daftka:daftka /var/lib/daftka
USER 10001:10001
# client (9092), peer (9093), http (9100) of a replica; the gateway's 8080; the operator's 9090.
EXPOSE 9092 9093 9100 8080 9090
ENTRYPOINT ["node"]
CMD ["dist/replica/main.js"]
