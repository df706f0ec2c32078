#!/usr/bin/env bash
# Installs the servers that esmd's real-server tests start (see test/SERVERS.md)
# into test/.tools (git-ignored):
#   - node_modules: kinesis-mock (npm kinesis-local) and kinesalite, from
#     test/package.json + test/package-lock.json (npm ci);
#   - venv: moto server, from test/requirements.txt + test/constraints.txt.
# NATS and Kafka (kfake) run in-process from Go modules and need nothing here.
# Idempotent: each part is skipped when its pinned inputs have not changed
# since it was last installed. Needs node + npm and python3 (with venv + pip).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${ESMD_TOOLS:-$here/.tools}"
mkdir -p "$tools"

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: ERROR: %s\n' "$*" >&2; exit 1; }

# fingerprint FILE... prints one hash of the files' contents.
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"; }

install_node() {
  need node "install Node.js 20 or later"
  need npm "install npm (comes with Node.js)"
  local want have=""
  want="$(fingerprint "$here/package.json" "$here/package-lock.json")-$(node --version)"
  [[ -f "$tools/.node.stamp" ]] && have="$(cat "$tools/.node.stamp")"
  if [[ "$want" == "$have" && -f "$tools/node_modules/kinesis-local/main.js" && -f "$tools/node_modules/kinesalite/cli.js" ]]; then
    say "node packages up to date (kinesis-local, kinesalite)"
    return
  fi
  say "installing node packages into $tools/node_modules (npm ci)"
  cp "$here/package.json" "$here/package-lock.json" "$tools/"
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  [[ -f "$tools/node_modules/kinesis-local/main.js" ]] || die "kinesis-local missing after npm ci"
  [[ -f "$tools/node_modules/kinesalite/cli.js" ]] || die "kinesalite missing after npm ci"
  echo "$want" > "$tools/.node.stamp"
  say "node packages installed: kinesis-local $(node -p "require('$tools/node_modules/kinesis-local/package.json').version"), kinesalite $(node -p "require('$tools/node_modules/kinesalite/package.json').version")"
}

install_moto() {
  local py="${PYTHON:-python3}"
  need "$py" "install Python 3 with venv and pip"
  local venv="$tools/venv" want have=""
  want="$(fingerprint "$here/requirements.txt" "$here/constraints.txt")-$("$py" --version 2>&1)"
  [[ -f "$tools/.venv.stamp" ]] && have="$(cat "$tools/.venv.stamp")"
  if [[ "$want" == "$have" && -x "$venv/bin/moto_server" ]]; then
    say "moto venv up to date ($("$venv/bin/python" -c 'import importlib.metadata as m; print("moto", m.version("moto"))'))"
    return
  fi
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating venv $venv"
    "$py" -m venv "$venv" || die "python venv failed (on Debian: apt-get install python3-venv)"
  fi
  say "installing moto into $venv (pip)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt" -c "$here/constraints.txt" || die "pip install failed"
  [[ -x "$venv/bin/moto_server" ]] || die "moto_server missing after pip install"
  echo "$want" > "$tools/.venv.stamp"
  say "moto installed: $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))')"
}

install_node
install_moto
# The Lambda runtime emulator and AWS's Python runtime client, for the
# function tests.
bash "$here/install-lambda.sh"
# ElasticMQ (Java, from Maven Central), the SQS server that holds FIFO
# groups exactly, for the FIFO ordering test moto cannot pass.
bash "$here/install-elasticmq.sh"
# Headless Chromium, for the test that opens esmd bench's HTML report.
bash "$here/install-browser.sh"
say "done: tools in $tools"
