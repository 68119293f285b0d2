#!/bin/sh
# Runs a command with the pinned Node of the given major first on PATH (installed on first use
# by scripts/install-node.sh), e.g. the suite or the benchmarks on the runtime the image ships:
#
#   sh scripts/with-node.sh 24 npm run test:node
#   sh scripts/with-node.sh 24 npm run bench
#
# Everything under it is that Node: npm's own `#!/usr/bin/env node`, the `node` its scripts call,
# and the child processes tests start from process.execPath.
set -eu

if [ "$#" -lt 2 ]; then
  echo "usage: sh scripts/with-node.sh <major> <command> [args...]" >&2
  exit 2
fi
major="$1"
shift
bin="$(sh "$(dirname "$0")/install-node.sh" "$major")"
PATH="$bin:$PATH"
export PATH
echo "with-node.sh: Node $(node --version) from $bin" >&2
exec "$@"
