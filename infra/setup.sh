#!/usr/bin/env bash
# Sets up everything liveward needs on a Debian/Ubuntu machine: system packages (Maven for
# the Kafka jars, Debian's clickhouse-server for the server backend and the tests, kcat,
# ffmpeg for the real media plane, chromium for the real-player tests), hls.js (npm ci), the
# virtual environment at .venv with the project and its dev tools, and the Kafka runtime
# jars (cached under ~/.cache/liveward). Safe to run again: each step skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=$(command -v "$candidate"); break
  fi
done
[ -n "$python" ] || die "Python 3.11 or newer is required (apt-get install python3 python3-venv)"

command -v java >/dev/null || die "a JDK 17+ is required (apt-get install openjdk-17-jre-headless)"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${java_major:-0}" -ge 17 ] || die "Java ${java_major:-?} found; Kafka 4 needs 17+ (apt-get install openjdk-17-jre-headless)"

missing=()
command -v mvn >/dev/null || missing+=(maven)
command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
command -v kcat >/dev/null || missing+=(kcat)
# The real media plane (encoder, packagers) and the real-player acceptance suite.
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null || die "please install: ${missing[*]}"
  say "installing ${missing[*]} (apt-get)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || die "apt-get could not install ${missing[*]}"
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $python"
  "$python" -m venv .venv || die "python venv failed (apt-get install python3-venv)"
fi
stamp=.venv/.liveward-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "installing liveward and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing the console's front-end packages (npm ci, pinned by package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
fi

say "fetching the Kafka runtime (Maven Central, cached)"
.venv/bin/python -c 'from liveward.settings import load_settings; from infra.kafka import runtime_libs; print(runtime_libs(load_settings().cache_dir))' >/dev/null
say "ready: .venv/bin/liveward"
