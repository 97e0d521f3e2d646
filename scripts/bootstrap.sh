#!/usr/bin/env bash
# Set up hpnn on a fresh Debian/Ubuntu machine: system packages (Python venv
# support, the Fashion-MNIST data set), a virtual environment in .venv, and hpnn
# installed into it. Safe to run again: it skips what is already there.
#
#   bash scripts/bootstrap.sh          # hpnn (with its compiled kernels: numba)
#   bash scripts/bootstrap.sh --test   # hpnn plus the test tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  need_python=1
elif ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "hpnn needs Python >= 3.11; $python is $("$python" -V 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi

packages=()
[ -n "${need_python:-}" ] && packages+=(python3)
if [ -n "${need_python:-}" ] || ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  packages+=(python3-venv)
fi
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)

if [ ${#packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "Installing Debian packages: ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "Not a Debian/Ubuntu machine: install ${packages[*]} yourself" \
         "(without the data package, hpnn downloads Fashion-MNIST on first use)." >&2
  fi
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
echo "hpnn is installed in .venv ($(.venv/bin/python -V))."
