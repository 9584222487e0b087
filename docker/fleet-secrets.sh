#!/bin/sh
# Generates the PINs of the compose fleet's three SoftHSM2 tokens (docker/compose.yaml secrets):
#   docker/secrets/vault_{1,2,3}_pin      user PIN of each node's token
#   docker/secrets/vault_{1,2,3}_so_pin   security officer PIN (the ceremony's `fleet join` needs them)
# 24 random hex digits each. Existing files are kept: a token is bound to the PINs it was created
# with, so regenerating them would lock the fleet out of its tokens (to start over, delete the
# secrets AND the volumes: `docker compose -f docker/compose.yaml down -v`).
#
# The directory is 0700 and ignored by git (its own .gitignore); the files are 0444 because
# compose bind-mounts them as they are and the containers run as uid 10001. Run as root, the
# files are instead owned by uid 10001 and 0400.
#
#   docker/fleet-secrets.sh            # or: docker/fleet-secrets.sh /some/other/dir
set -eu
dir="${1:-$(dirname "$0")/secrets}"
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
printf '*\n' > "$dir/.gitignore"
chmod 0644 "$dir/.gitignore"
made=0
for n in 1 2 3; do
  for kind in pin so_pin; do
    file="$dir/vault_${n}_$kind"
    [ -s "$file" ] && continue
    od -An -tx1 -N12 /dev/urandom | tr -d ' \n' > "$file.tmp"
    if [ "$(id -u)" = 0 ]; then chown 10001:10001 "$file.tmp"; chmod 0400 "$file.tmp"; else chmod 0444 "$file.tmp"; fi
    mv "$file.tmp" "$file"
    made=$((made + 1))
  done
done
echo "fleet-secrets: $made new PIN file(s) in $dir ($((6 - made)) kept)"
