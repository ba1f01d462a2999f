#!/bin/sh
# spec/support/node/install.sh - install the official OpenAI Node SDK for the
# specs into build/node (never into the source tree), and copy
# openai_client.mjs next to its node_modules: an ES module resolves
# `import "openai"` from its own folder upward and ignores NODE_PATH.
#   sh spec/support/node/install.sh      # prints the client script's path last
# Runs `npm ci` only when build/node/node_modules/openai is missing or the
# committed package-lock.json changed since the last install. --engine-strict:
# an SDK whose "engines" excludes this node fails here, by name, instead of
# installing with a warning and breaking later (openai 7.x needs node >= 22;
# the pin, 6.49.0, runs on Debian 12's node 18 and on newer ones).
# Exit codes: 0 ready, 3 node or npm missing, anything else npm's failure.
set -eu
unset LD_PRELOAD
src=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$src/../../.." && pwd -P)
dest=${LLMRELAY_NODE_DIR:-$root/build/node}

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "install.sh: $tool not found (sh tools/install-deps installs Debian's nodejs and npm)" >&2
    exit 3
  fi
done

mkdir -p "$dest"
if [ ! -f "$dest/node_modules/openai/package.json" ] ||
   ! cmp -s "$src/package-lock.json" "$dest/package-lock.json" ||
   ! cmp -s "$src/package.json" "$dest/package.json"; then
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --engine-strict --no-audit --no-fund) >&2
fi
cp "$src/openai_client.mjs" "$dest/"
echo "$dest/openai_client.mjs"
