#!/usr/bin/env bash
# Installs ElasticMQ, a second SQS test server (see test/SERVERS.md), into
# test/.tools/elasticmq/lib: the server jar pinned in test/elasticmq/pom.xml
# and its runtime dependencies, fetched from Maven Central by Maven.
# Idempotent: skipped when the pom and the Java version are unchanged since
# the last install. Needs Java 11+ (java) and Maven (mvn).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="${ESMD_TOOLS:-$here/.tools}"
dest="$tools/elasticmq"

say() { printf 'install-elasticmq: %s\n' "$*"; }
die() { printf 'install-elasticmq: ERROR: %s\n' "$*" >&2; exit 1; }

command -v java >/dev/null 2>&1 || die "java not found on PATH: install a JDK or JRE 11 or later"
command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH: install Maven"

want="$(sha256sum < "$here/elasticmq/pom.xml" | cut -d' ' -f1)-$(java -version 2>&1 | head -n1)"
have=""
[[ -f "$dest/.stamp" ]] && have="$(cat "$dest/.stamp")"
if [[ "$want" == "$have" ]] && compgen -G "$dest/lib/elasticmq-server_*.jar" >/dev/null; then
  say "ElasticMQ up to date"
  exit 0
fi

say "fetching ElasticMQ and its dependencies into $dest/lib (mvn)"
rm -rf "$dest/lib"
mkdir -p "$dest/lib"
mvn -q -B -Dstyle.color=never -f "$here/elasticmq/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$dest/lib" || die "mvn dependency:copy-dependencies failed"
compgen -G "$dest/lib/elasticmq-server_*.jar" >/dev/null || die "elasticmq-server jar missing after mvn"
echo "$want" > "$dest/.stamp"
say "ElasticMQ installed: $(basename "$dest"/lib/elasticmq-server_*.jar)"
