#!/usr/bin/env bash
# System packages the tests need, installed with apt-get when missing (Debian/Ubuntu).
set -euo pipefail
need=()
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v git >/dev/null 2>&1 || need+=(git)
command -v openssl >/dev/null 2>&1 || need+=(openssl)  # a self-signed certificate in the TLS tests
[ -x /usr/bin/chromium ] || need+=(chromium)  # the browser tests (Playwright drives it; no download)
command -v node >/dev/null 2>&1 || need+=(nodejs)  # builds the JupyterLab extension (labextension/)
# The S3 artifact tests: OpenStack Swift with its s3api middleware (scripts/swift_s3.sh)
if ! command -v swift-proxy-server >/dev/null 2>&1 || ! command -v memcached >/dev/null 2>&1; then
  need+=(swift swift-proxy swift-account swift-container swift-object memcached)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "Installing system packages: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's own nodejs ships npm apart (NodeSource's includes it)
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# the extension's bundler (rspack) needs Node.js >= 20.19 (Debian 12 has 18: use NodeSource's)
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  echo "warning: Node.js $(node --version) is too old to build labextension/ (needs >= 20.19)" >&2
