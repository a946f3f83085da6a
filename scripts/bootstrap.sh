# Sourced by scripts/start and scripts/test: a Python 3.11+ virtualenv in .venv
# with the pinned requirements and Turnout itself installed (editable).
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
if [ -z "$PYTHON" ]; then
  echo "turnout: Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2; exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "turnout: $PYTHON is $("$PYTHON" --version 2>&1); Python 3.11 or newer is needed" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.turnout-installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "==> installing requirements into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt -e .
  touch "$stamp"
fi
# Run as root, `turnout up` starts every process as an unprivileged user (TURNOUT_APP_USER,
# default turnout; docs/operations.md): create it once. It must be able to read this checkout.
if [ "$(id -u)" = 0 ]; then
  APP_USER=${TURNOUT_APP_USER:-turnout}
  if ! id -u "$APP_USER" >/dev/null 2>&1; then
    echo "==> creating the system user $APP_USER, which every process runs as"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$APP_USER"
  fi
fi
