#!/usr/bin/env bash
# Installs headless Chromium (Debian's chromium package), which the esmd
# bench HTML report test opens. Safe to run again: it does nothing when
# chromium is already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-browser: apt-get not found; install chromium by hand" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
command -v chromium
