# Shared set-up for scripts/demo and scripts/test: a .venv on Python 3.11 with pinned requirements.
# Sourced, not run. Re-installs only when a requirements file changed.

die() { echo "error: $*" >&2; exit 1; }

find_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  die "PopArena needs Python 3.11 (torch 2.13.0's CPU wheel is built for it); set PYTHON=/path/to/python3.11"
}

# ensure_venv REQUIREMENTS_FILE: create .venv and install REQUIREMENTS_FILE (and what it includes).
ensure_venv() {
  local requirements=$1
  if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    "$(find_python)" -m venv .venv || die "could not create .venv"
  fi
  local stamp=.venv/.poparena-$(basename "$requirements").sha256
  local want
  want=$(cat requirements*.txt | sha256sum | cut -d' ' -f1)
  # requirements-dev.txt includes requirements.txt: once it is installed, so is everything scripts/demo needs
  # (CI runs scripts/test, then scripts/demo, whose pip run only found everything there: 30 s).
  if [ "$(cat .venv/.poparena-requirements-dev.txt.sha256 2>/dev/null)" = "$want" ]; then
    export PATH="$PWD/.venv/bin:$PATH"
    return
  fi
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing $requirements into .venv (first time: a few minutes)"
    # torch first and alone, so the CPU wheel is chosen before anything pulls a CUDA build.
    # --no-compile: Python compiles what is imported when it is first imported; compiling every file of
    # torch and the rest up front doubled the install's time (73 s against 37 s here, pip's cache warm).
    .venv/bin/python -m pip install --quiet --no-compile "torch==2.13.0" || die "could not install torch 2.13.0"
    .venv/bin/python -m pip install --quiet --no-compile -r "$requirements" || die "could not install $requirements"
    echo "$want" > "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}
