#!/bin/sh
# Installs the Debian packages the test suite runs for real. `npm test` calls it first; it does
# nothing when they are present, uses apt-get when run as root, and otherwise names what is
# missing and fails, so a test never quietly skips for want of a program.
set -eu

# chromium: the demo page is tested in a real browser (playwright-core drives it).
# redis-server: the Redis broker's tests start their own, to kill and restart it.
# haproxy, nginx: the load balancer configurations run for real in front of app nodes.
# prometheus (with promtool): scrape and rule configs, alert rule tests, dashboard queries.
# docker-compose: validates docker-compose.yml (no engine is needed for `config`).
# openssl: a throwaway certificate for the https server the socket guard is tested on.
PACKAGES="chromium redis-server haproxy nginx prometheus docker-compose openssl"

missing=""
for package in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $package"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
else
  echo "The tests need these Debian packages:$missing" >&2
  echo "Install them as root: apt-get install$missing" >&2
  exit 1
fi
