#!/usr/bin/env bash
# Container images and container tests, for CI (as root, on a machine without Docker Hub).
#
#   1. installs Debian's docker.io and debootstrap;
#   2. starts a private dockerd (no bridge, no iptables, its own socket, data-root and exec-root);
#   3. makes the base image debian:bookworm-slim itself: debootstrap --variant=minbase from the
#      machine's Debian mirror, then `docker import` (cached as a tarball between runs);
#   4. builds docker/softhsm2 and docker/node with --network host from the files git knows, and
#      docker/etcd (Debian's etcd-server on the base image);
#   5. runs test/containers with CONTAINERS_REQUIRED=1 against the private engine (the softhsm2
#      image, and the node fleet: etcd containers, the compose ceremony, node containers);
#   6. smoke-tests the node image (non-root, read-only root, no toolchain, HEALTHCHECK script);
#   7. validates docker/compose.yaml with Debian's docker-compose (or `docker compose` where the
#      plugin exists), brings the compose fleet up, checks every node and the witness answer, and
#      takes it down (HSM_VAULT_CI_COMPOSE_UP=0 skips the up/down);
#   8. stops dockerd (trap), whatever happened.
# Containers only ever use host networking or none. Docker's layer cache lives in the data-root
# and the base tarball in $CACHE_DIR, so a second run on the same machine mostly reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

CI_ROOT="${HSM_VAULT_CI_ROOT:-/tmp/hsm-vault-ci}"            # socket, exec-root, logs
CACHE_DIR="${HSM_VAULT_CI_CACHE:-/var/cache/hsm-vault-ci}"    # base image tarball
DATA_ROOT="${HSM_VAULT_CI_DATA_ROOT:-/var/lib/hsm-vault-ci/docker}"
SOCKET="$CI_ROOT/docker.sock"
BASE_IMAGE=debian:bookworm-slim
SOFTHSM2_IMAGE=hsm-vault/softhsm2:ci
NODE_IMAGE=hsm-vault/node:ci
ETCD_IMAGE=hsm-vault/etcd:ci
export DEBIAN_FRONTEND=noninteractive
export DOCKER_HOST="unix://$SOCKET"

started=$SECONDS
step() { echo "== [$((SECONDS - started))s] $*"; }

step "installing docker.io, docker-compose and debootstrap from Debian"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap >/dev/null
fi

mkdir -p "$CI_ROOT" "$CACHE_DIR" "$DATA_ROOT"
dockerd_pid=""
stop_dockerd() {
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    echo "== stopping dockerd ($dockerd_pid)"
    kill "$dockerd_pid"
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$dockerd_pid" 2>/dev/null || true
  fi
  # dockerd leaves its netns mount behind; a later run (or rm -rf) trips over it.
  awk -v root="$CI_ROOT/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r \
    | while read -r mnt; do umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true; done
}
trap stop_dockerd EXIT
trap 'echo "containers.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

step "starting dockerd on $SOCKET (data-root $DATA_ROOT)"
dockerd \
  --host "$DOCKER_HOST" \
  --data-root "$DATA_ROOT" \
  --exec-root "$CI_ROOT/exec" \
  --pidfile "$CI_ROOT/dockerd.pid" \
  --bridge=none --iptables=false --ip-masq=false \
  >"$CI_ROOT/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 120); do
  docker version >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || { echo "dockerd exited:"; tail -n 30 "$CI_ROOT/dockerd.log"; exit 1; }
  sleep 0.5
done
docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}}), storage driver '"$(docker info --format '{{.Driver}}')"

# The first bookworm mirror configured for this machine's apt (deb822 or one-line format).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm([ \n]|$)/ && /Types:[^\n]*deb([ \n]|$)/ {
           if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { split(substr($0, RSTART, RLENGTH), u, /[ \t]+/); print u[2]; exit } }' "$f"
  done
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") print $i; break } }'
}

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE already in the engine"
else
  base_tar="$CACHE_DIR/bookworm-minbase.tar"
  if [ ! -s "$base_tar" ]; then
    mirror="$(debian_mirror | head -n 1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    step "debootstrap --variant=minbase bookworm from $mirror"
    rootfs="$CI_ROOT/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$CI_ROOT/debootstrap.log" 2>&1 \
      || { tail -n 30 "$CI_ROOT/debootstrap.log"; exit 1; }
    # The image's apt uses the same mirror, with updates and security when the machine has them.
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
      cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
      rm -f "$rootfs/etc/apt/sources.list"
    fi
    # What debian:bookworm-slim does: no docs or man pages, no apt caches in layers.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-norecommends"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    tar -C "$rootfs" -cf "$base_tar.partial" . && mv "$base_tar.partial" "$base_tar"
    rm -rf "$rootfs"
  fi
  step "docker import $base_tar as $BASE_IMAGE"
  docker import - "$BASE_IMAGE" <"$base_tar" >/dev/null
fi

# Build context: the files git knows (tracked and new, not ignored) plus this machine's extra CA
# certificates, so no node_modules/dist/.git is sent and builds work behind a TLS-inspecting proxy.
step "build context"
context="$CI_ROOT/context.tar"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf "$context"
shopt -s nullglob
cas=(/usr/local/share/ca-certificates/*.crt)
if [ ${#cas[@]} -gt 0 ]; then
  tar -rf "$context" -C /usr/local/share/ca-certificates \
    --transform 's#^#docker/extra-ca/#' "${cas[@]##*/}"
fi
echo "   $(du -h "$context" | cut -f1), ${#cas[@]} extra CA certificate(s)"

step "building $SOFTHSM2_IMAGE"
docker build --network host -f docker/softhsm2/Dockerfile -t "$SOFTHSM2_IMAGE" - <"$context" \
  >"$CI_ROOT/softhsm2-build.log" 2>&1 || { tail -n 60 "$CI_ROOT/softhsm2-build.log"; exit 1; }
# The node image's build stage reuses the softhsm2 image's cached layers up to the native addons.
# Built before the tests, not beside them: the conformance suite's load tests need the CPU.
step "building $NODE_IMAGE"
docker build --network host -f docker/node/Dockerfile -t "$NODE_IMAGE" - <"$context" \
  >"$CI_ROOT/node-build.log" 2>&1 || { tail -n 60 "$CI_ROOT/node-build.log"; exit 1; }
# etcd copies nothing from the repository: the Dockerfile alone is the context.
step "building $ETCD_IMAGE"
docker build --network host -t "$ETCD_IMAGE" - <docker/etcd/Dockerfile \
  >"$CI_ROOT/etcd-build.log" 2>&1 || { tail -n 60 "$CI_ROOT/etcd-build.log"; exit 1; }
docker image ls --format '   {{.Repository}}:{{.Tag}} {{.Size}}' | grep ':ci '

step "container tests (CONTAINERS_REQUIRED=1)"
if ! node -e "import('testcontainers')" 2>/dev/null; then
  echo "testcontainers is not installed: add testcontainers@11 to devDependencies"; exit 1
fi
# One file at a time: the conformance suite's load tests inside the softhsm2 container need the
# CPU, which the node fleet's containers would otherwise share.
CONTAINERS_REQUIRED=1 HSM_VAULT_SOFTHSM2_IMAGE="$SOFTHSM2_IMAGE" HSM_VAULT_NODE_IMAGE="$NODE_IMAGE" \
  HSM_VAULT_ETCD_IMAGE="$ETCD_IMAGE" npx vitest run --no-file-parallelism test/containers

step "node image smoke test (uid 10001, read-only root, no toolchain, token, HEALTHCHECK script)"
user="$(docker image inspect -f '{{.Config.User}}' "$NODE_IMAGE")"
[ "$user" = 10001:10001 ] || { echo "node image user is '$user', expected 10001:10001"; exit 1; }
docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$NODE_IMAGE" | grep -q healthcheck.mjs \
  || { echo "node image has no HEALTHCHECK"; exit 1; }
smoke='set -e
for tool in g++ make python3 npm; do
  if command -v "$tool" >/dev/null; then echo "$tool is in the runtime image"; exit 1; fi
done
id -u
hsm-vault hsm info
node -e "require(\"http\").createServer((q, s) => { s.statusCode = q.url === \"/healthz\" ? 200 : 404; s.end(); }).listen(8080)" &
for i in $(seq 1 40); do
  if node /opt/hsm-vault/docker/healthcheck.mjs 2>/dev/null; then echo "healthcheck ok"; exit 0; fi
  sleep 0.25
done
exit 1'
docker run --rm --network none --read-only --tmpfs /tmp -e HSM_VAULT_DEV_RANDOM_PINS=1 "$NODE_IMAGE" sh -c "$smoke" \
  >"$CI_ROOT/node-smoke.log" 2>&1 || { cat "$CI_ROOT/node-smoke.log"; exit 1; }
grep -E '^(10001|token|healthcheck)' "$CI_ROOT/node-smoke.log" | sed 's/^/   /'

# docker/compose.yaml: validated and brought up by whichever compose is installed (step 1
# installs Debian's docker-compose 1.29; test/containers/node-fleet.test.ts runs its ceremony).
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
fi
if [ ${#compose[@]} -eq 0 ]; then
  echo "no compose binary (docker compose / docker-compose): cannot check docker/compose.yaml"; exit 1
else
  step "validating docker/compose.yaml with $("${compose[@]}" version --short 2>/dev/null || echo "${compose[*]}")"
  export HSM_VAULT_NODE_IMAGE="$NODE_IMAGE" HSM_VAULT_ETCD_IMAGE="$ETCD_IMAGE"
  "${compose[@]}" -f docker/compose.yaml config -q
  services="$("${compose[@]}" -f docker/compose.yaml config --services | sort | tr '\n' ' ')"
  [ "$services" = "ceremony etcd-1 etcd-2 etcd-3 vault-1 vault-2 vault-3 witness " ] \
    || { echo "unexpected compose services: $services"; exit 1; }
  if grep -Eq '^version:' docker/compose.yaml; then echo "docker/compose.yaml has a version: key"; exit 1; fi
  if [ "${HSM_VAULT_CI_COMPOSE_UP:-1}" = 1 ]; then
    # The whole fleet on this machine's ports 8081-8083, 8480, 12379-32380 (see compose.yaml).
    step "compose fleet up"
    secrets_dir="docker/secrets"
    made_secrets=0
    [ -d "$secrets_dir" ] || made_secrets=1
    docker/fleet-secrets.sh "$secrets_dir"
    project=(-p hsm-vault-ci -f docker/compose.yaml)
    compose_down() {
      "${compose[@]}" "${project[@]}" down -v >/dev/null 2>&1 || true
      if [ "$made_secrets" = 1 ]; then rm -rf "$secrets_dir"; fi
    }
    trap 'compose_down; stop_dockerd' EXIT
    "${compose[@]}" "${project[@]}" up -d >"$CI_ROOT/compose-up.log" 2>&1 || { cat "$CI_ROOT/compose-up.log"; exit 1; }
    for url in http://127.0.0.1:8081/healthz http://127.0.0.1:8082/healthz http://127.0.0.1:8083/healthz http://127.0.0.1:8480/v1/key; do
      ok=0
      for _ in $(seq 1 60); do
        if node -e "fetch('$url').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; then ok=1; break; fi
        sleep 1
      done
      [ "$ok" = 1 ] || { "${compose[@]}" "${project[@]}" logs --no-color | tail -n 60; echo "compose fleet: $url never answered"; exit 1; }
      echo "   $url ok"
    done
    compose_down
    trap stop_dockerd EXIT
  fi
fi

# Keep the cache bounded: drop image layers no tag uses any more.
docker image prune -f >/dev/null
step "done"
