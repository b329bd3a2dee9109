#!/usr/bin/env bash
# Try and develop the CDP with nothing but Python 3.11+:
#   ./dev.sh demo                 demo data and a local server on http://127.0.0.1:8000/
#   ./dev.sh test [pytest args]   the test suite (on PostgreSQL when DATABASE_URL is set, else SQLite)
# Both create ./.venv on first use and reinstall only when pyproject.toml changed.
# (./dev.sh setup, used by CI, only prepares the virtualenv.)
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=$VENV/bin/python
STAMP=$VENV/.installed-pyproject.toml

is_python_311() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

find_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null && is_python_311 "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    echo "dev.sh: Python 3.11 or newer is needed (tried python3.13, python3.12, python3.11, python3)." >&2
    exit 1
}

setup() {
    if ! is_python_311 "$PY"; then
        local python
        python=$(find_python)
        echo "Creating $VENV with $python ($("$python" --version))"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    if ! cmp -s pyproject.toml "$STAMP"; then
        echo "Installing the project and its dev tools into $VENV (a minute the first time)"
        "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
        "$PY" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
        cp pyproject.toml "$STAMP"
    fi
}

demo() {
    setup
    export DEBUG=1
    "$PY" manage.py migrate --no-input --verbosity 0
    "$PY" manage.py demo_load
    echo
    echo "Starting the server on http://127.0.0.1:8000/ (Ctrl+C stops it)"
    exec "$PY" manage.py runserver 127.0.0.1:8000
}

run_tests() {
    setup
    exec "$PY" -m pytest "$@"
}

case "${1:-}" in
    demo) demo ;;
    test) shift && run_tests "$@" ;;
    setup) setup ;;
    *)
        echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
