#!/usr/bin/env bash
# Installs what the function (invoker) tests need into test/.tools
# (git-ignored):
#   - bin/aws-lambda-rie: AWS's Lambda Runtime Interface Emulator, built from
#     its Go module at a pinned version;
#   - awslambdaric (AWS's Python runtime interface client) in the venv that
#     test/install.sh creates for moto (created here when missing).
# Idempotent: each part is skipped when it is already installed at the pinned
# version. Needs go and python3 (with venv + pip).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${ESMD_TOOLS:-$here/.tools}"
mkdir -p "$tools/bin"

rie_module="github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
rie_version="v0.0.0-20261030222936-bef5c4ba774d"
ric_version="4.2.2"

say() { printf 'install-lambda: %s\n' "$*"; }
die() { printf 'install-lambda: ERROR: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"; }

install_rie() {
  need go "install Go"
  local stamp="$tools/.rie.stamp" want="$rie_version"
  if [[ -x "$tools/bin/aws-lambda-rie" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    say "aws-lambda-rie up to date ($rie_version)"
    return
  fi
  say "building aws-lambda-rie $rie_version into $tools/bin"
  # Built outside this module so that its dependencies stay out of go.mod.
  (cd "$tools" && GOBIN="$tools/bin" GOFLAGS=-mod=mod go install "$rie_module@$rie_version") || die "go install aws-lambda-rie failed"
  [[ -x "$tools/bin/aws-lambda-rie" ]] || die "aws-lambda-rie missing after go install"
  echo "$want" > "$stamp"
}

install_ric() {
  local py="${PYTHON:-python3}"
  need "$py" "install Python 3 with venv and pip"
  local venv="$tools/venv"
  if [[ ! -x "$venv/bin/python" ]]; then
    say "creating venv $venv"
    "$py" -m venv "$venv" || die "python venv failed (on Debian: apt-get install python3-venv)"
  fi
  if "$venv/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("awslambdaric") != sys.argv[1])' "$ric_version" 2>/dev/null; then
    say "awslambdaric up to date ($ric_version)"
    return
  fi
  say "installing awslambdaric $ric_version into $venv (pip)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "awslambdaric==$ric_version" || die "pip install awslambdaric failed"
  "$venv/bin/python" -c 'import awslambdaric' || die "awslambdaric does not import after pip install"
}

install_rie
install_ric
say "done: tools in $tools"
