#!/usr/bin/env bash
# A Python package from PyPI in a virtual environment of its own under .build/, never in the system's Python (Debian
# 12's python3 refuses a system-wide pip install, PEP 668). Used by check-packaging.sh (kubernetes-validate); the
# same approach as scripts/bench/install-deps.sh (matplotlib in .build/bench-venv).
#
# Usage: scripts/py-venv.sh VENV MODULE REQUIREMENT...
#   Idempotent: a VENV whose python imports MODULE is kept. Otherwise VENV is made anew with Debian's /usr/bin/python3
#   (python3-venv is installed first if missing, as root), REQUIREMENT... are pip-installed, and MODULE must import.
#   Any failure is reported on stderr with a non-zero exit status: callers fail, never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:?usage: py-venv.sh VENV MODULE REQUIREMENT...}
module=${2:?usage: py-venv.sh VENV MODULE REQUIREMENT...}
shift 2
[ $# -gt 0 ] || { echo "usage: py-venv.sh VENV MODULE REQUIREMENT..." >&2; exit 2; }
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import $module" 2>/dev/null; then exit 0; fi
if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "py-venv: python3-venv missing; run as root (or: apt-get install python3-venv)" >&2
    exit 1
  fi
  echo "installing: python3-venv" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
echo "py-venv: installing into $venv: $*" >&2
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
"$venv/bin/python" -c "import $module" || { echo "py-venv: $module does not import from $venv" >&2; exit 1; }
