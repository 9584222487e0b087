#!/bin/sh
# The key ceremony of the development fleet in docker/compose.yaml (its one-shot `ceremony`
# service; test/containers/node-fleet.test.ts runs it too). Idempotent: a second run creates
# nothing, generates nothing, and only re-checks and re-publishes the public files.
#
#   1. creates the SoftHSM2 tokens vault-1, vault-2, vault-3 (each its own user PIN and SO PIN,
#      from $secrets/<label with _>_pin and _so_pin) in the shared token directory;
#   2. `hsm-vault fleet init --transportable` in the first token, unless the fleet is there;
#   3. `hsm-vault fleet join --from <first> --to <each other>`, unless the fleet is there;
#   4. checks that every token holds the same fleet public keys;
#   5. creates the development account-service (JWT) issuer key once, in its private directory;
#   6. publishes the public files the nodes and the witness read, in $public:
#        fleet-keys.json  the fleet's public keys {ake, hpke, signing}
#        init.json, join-<label>.json   signed ceremony transcripts (hsm-vault fleet verify-transcript)
#        account-service.pem          the issuer's public key (the nodes' HSM_VAULT_JWT_KEYS)
#        log.vkey                     the audit log's note verifier key (the witness's --log-key)
#
# Why all three tokens live in one token directory: `fleet join` opens both tokens in one process,
# and SoftHSM2 reads exactly one tokendir per process (no symlinks followed inside it). Each node
# still opens only its own token, with only its own PIN. Production has one HSM per node.
#
# Started as root (compose), it makes the volume roots its user's, then drops to uid 10001.
# Nothing secret is printed: PINs stay in their files, the issuer's private key in $issuer.
set -eu

fleet="${HSM_VAULT_FLEET:?set HSM_VAULT_FLEET}"
state="${HSM_VAULT_STATE_DIR:-/var/lib/hsm-vault}"               # shared token directory (volume)
public="${HSM_VAULT_FLEET_DIR:-/var/lib/hsm-vault-fleet}"        # public files (volume, read-only in nodes)
issuer="${HSM_VAULT_ISSUER_DIR:-/var/lib/hsm-vault-issuer}"      # dev JWT issuer private key (ceremony only)
secrets="${HSM_VAULT_SECRETS_DIR:-/run/secrets}"
labels="${HSM_VAULT_FLEET_TOKENS:-vault-1 vault-2 vault-3}"
origin="${HSM_VAULT_LOG_ORIGIN:-$fleet.log}"
operator="${HSM_VAULT_OPERATOR:-compose-ceremony}"
vault_uid="${HSM_VAULT_UID:-10001}"

say() { echo "fleet-ceremony: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
  for dir in "$state" "$public" "$issuer"; do
    mkdir -p "$dir"
    chown "$vault_uid:$vault_uid" "$dir"
  done
  chmod 0700 "$state" "$issuer"
  chmod 0755 "$public"
  exec setpriv --reuid="$vault_uid" --regid="$vault_uid" --clear-groups -- sh "$0" "$@"
fi

umask 077
export SOFTHSM2_CONF="$state/softhsm/softhsm2.conf"
module=""
for candidate in "${SOFTHSM2_MODULE:-}" /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
  if [ -n "$candidate" ] && [ -f "$candidate" ]; then module="$candidate"; break; fi
done
[ -n "$module" ] || { say "SoftHSM2 is not installed in this image"; exit 69; }

secret_file() { printf '%s/%s_%s' "$secrets" "$(printf '%s' "$1" | tr -- '-.' '__')" "$2"; }
uri() { printf 'pkcs11:token=%s?module-path=%s&pin-source=file:%s' "$1" "$module" "$(secret_file "$1" pin)"; }
has_fleet() { hsm-vault fleet show --hsm "$(uri "$1")" --fleet "$fleet" --state-dir "$state" --json > /dev/null 2>&1; }
public_keys() { # the "publicKeys" object of `fleet show --json`, on one line
  hsm-vault fleet show --hsm "$(uri "$1")" --fleet "$fleet" --state-dir "$state" --json \
    | node -e 'let s = ""; process.stdin.on("data", (c) => (s += c)).on("end", () => console.log(JSON.stringify(JSON.parse(s).publicKeys)))'
}
publish() { # publish NAME: stdin to $public/NAME, atomically
  cat > "$public/.$1.tmp"
  chmod 0644 "$public/.$1.tmp"
  mv -f "$public/.$1.tmp" "$public/$1"
}

# 1. Tokens (hsm-vault-token-init is a no-op for a label that exists).
for label in $labels; do
  for kind in pin so_pin; do
    [ -r "$(secret_file "$label" "$kind")" ] || { say "no secret $(secret_file "$label" "$kind") (run docker/fleet-secrets.sh)"; exit 64; }
  done
  HSM_VAULT_STATE_DIR="$state" HSM_VAULT_TOKEN_LABEL="$label" HSM_VAULT_PIN_FILE="$(secret_file "$label" pin)" \
    HSM_VAULT_SO_PIN_FILE="$(secret_file "$label" so_pin)" hsm-vault-token-init
done
# The token-init URI file names the last token; nodes name theirs in HSM_VAULT_HSM instead.
rm -f "$state/softhsm/hsm.uri"

# 2. The fleet in the first token (`fleet init` never overwrites: a failed check cannot re-key).
set -- $labels
first="$1"
if has_fleet "$first"; then
  say "fleet $fleet already in token $first"
else
  [ ! -e "$public/init.json" ] || mv "$public/init.json" "$public/init.json.orphaned-$(date -u +%Y%m%dT%H%M%SZ)"
  hsm-vault fleet init --hsm "$(uri "$first")" --fleet "$fleet" --transportable --operator "$operator" \
    --transcript "$public/init.json" --state-dir "$state" > /dev/null
  chmod 0644 "$public/init.json"
  say "generated fleet $fleet in token $first (transportable)"
fi

# 3. The same keys in every other token.
shift
for label in "$@"; do
  if has_fleet "$label"; then
    say "fleet $fleet already in token $label"
    continue
  fi
  transcript="$public/join-$label.json"
  [ ! -e "$transcript" ] || mv "$transcript" "$transcript.orphaned-$(date -u +%Y%m%dT%H%M%SZ)"
  hsm-vault fleet join --from "$(uri "$first")" --to "$(uri "$label")" --fleet "$fleet" \
    --so-pin-source-from "file:$(secret_file "$first" so_pin)" --so-pin-source-to "file:$(secret_file "$label" so_pin)" \
    --operator "$operator" --transcript "$transcript" --state-dir "$state" > /dev/null
  chmod 0644 "$transcript"
  say "joined token $label to fleet $fleet"
done

# 4. One key set everywhere.
keys="$(public_keys "$first")"
for label in "$@"; do
  other="$(public_keys "$label")"
  [ "$other" = "$keys" ] || { say "token $label holds other fleet public keys than $first: $other"; exit 1; }
done
printf '%s\n' "$keys" | publish fleet-keys.json

# 5. The development account-service issuer (created on first use, never overwritten). The token
#    minted to create it is discarded.
hsm-vault auth token --state-dir "$issuer" --fleet "$fleet" --user fleet-ceremony --scope register --ttl 1 > /dev/null
node -e 'const c = require("node:crypto"); process.stdout.write(c.createPublicKey(require("node:fs").readFileSync(process.argv[1])).export({ type: "spki", format: "pem" }))' \
  "$issuer/dev-auth-ed25519.pem" | publish account-service.pem

# 6. The audit log's note key: the fleet signing key's public half, named by the log origin.
hsm-vault log key --origin "$origin" --fleet "$fleet" --hsm "$(uri "$first")" --state-dir "$state" | publish log.vkey

say "fleet $fleet ready in tokens: $labels; public keys $keys"
