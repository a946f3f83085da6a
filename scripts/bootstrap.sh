# Sourced by scripts/start and scripts/test: a Python 3.11+ virtualenv in .venv
# with the pinned requirements and Turnout itself installed (editable).
#
# Run as root, `turnout up` starts every process as an unprivileged user (TURNOUT_APP_USER,
# default turnout; docs/operations.md): it is created here once, and the interpreter chosen
# is one that user can run (pyenv's under /root is not: /root is 0700).
APP_USER=${TURNOUT_APP_USER:-turnout}
if [ "$(id -u)" = 0 ] && ! id -u "$APP_USER" >/dev/null 2>&1; then
  echo "==> creating the system user $APP_USER, which every process runs as"
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$APP_USER"
fi
app_user_can_run() {
  [ "$(id -u)" != 0 ] || runuser -u "$APP_USER" -- "$1" -c '' >/dev/null 2>&1
}
if [ -z "${PYTHON:-}" ]; then
  for candidate in $(command -v python3.11 python3 2>/dev/null) /usr/bin/python3.11 /usr/bin/python3; do
    if [ -x "$candidate" ] && app_user_can_run "$(readlink -f "$candidate")"; then
      PYTHON=$candidate; break
    fi
  done
  PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
fi
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
# The dashboard's browser tests drive Debian's chromium through its chromedriver. As root
# they are installed here once; otherwise those tests skip, saying why (and fail under
# TURNOUT_REQUIRE_SERVICES=1, as CI runs them).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium and chromedriver (apt) for the dashboard's browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
      || echo "turnout: could not install chromium; the browser tests will skip" >&2
  else
    echo "turnout: /usr/bin/chromium or /usr/bin/chromedriver is missing; the dashboard's" \
      "browser tests will skip (as root: apt-get install chromium chromium-driver)" >&2
  fi
fi
