# Sourced by bin/demo and bin/test: creates .venv with Python 3.11+ and installs $1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python_bin=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Bursar needs Python 3.11 or newer; $python_bin is $("$python_bin" --version 2>&1)" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "creating .venv with $("$python_bin" --version)"
  "$python_bin" -m venv .venv
fi
# Reinstall only when the requirement files changed since the last install.
stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$1")"
if [[ ! -f $stamp ]]; then
  echo "installing $1 into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check -q -r "$1"
  touch "$stamp"
fi
