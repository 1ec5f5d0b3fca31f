#!/usr/bin/env bash
# Set up everything and build the executed book, on a fresh machine or an existing clone:
#   1. a virtual environment .venv with the exact pins of requirements.txt and scansnap, built
#      into a wheel and installed from it (not editable), as a reader's pip install gets it
#   2. Chromium for the browser tests (Debian/Ubuntu, when run as root; otherwise a hint)
#   3. the pinned front-end assets (tools/fetch_assets.sh: widgets, RequireJS, MathJax; via npm)
#   4. the executed book: each page's .ipynb twin executed in parallel from a folder outside the
#      repository against the installed package (tools/preexecute.py: a failing twin fails here),
#      then `jb build . -W -n --keep-going --all`, which reuses those outputs (any warning,
#      failing cell or stderr output fails the build)
# Then run the tests with: .venv/bin/python -m pytest -q
# Options: --no-build (steps 1-3 only). Environment: PYTHON (default python3, needs 3.11),
# SCANSNAP_WIKITEXT_DIR (WikiText-2 folder; defaults to ../shared/data/wikitext-2 when present).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "usage: bash tools/setup_and_build.sh [--no-build]" >&2; exit 2 ;;
  esac
done

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

step "virtual environment"
if [[ ! -x .venv/bin/python ]]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
# Not editable: the book's kernels import the installed package, as a reader's Colab does. After
# editing scansnap/, run this script again (or the same pip command) before building.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall .

step "chromium (browser tests)"
if command -v chromium >/dev/null 2>&1; then
  echo "found $(command -v chromium)"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  # Only refresh the package lists when chromium is not installable from the current ones.
  apt-cache show chromium >/dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  echo "installed $(command -v chromium)"
else
  echo "no chromium: the browser tests will be skipped (install it: apt-get install chromium)"
fi

step "front-end assets"
bash tools/fetch_assets.sh

if [[ $build -eq 1 ]]; then
  if [[ -z "${SCANSNAP_WIKITEXT_DIR:-}" && -d ../shared/data/wikitext-2 ]]; then
    SCANSNAP_WIKITEXT_DIR="$(realpath ../shared/data/wikitext-2)"
    export SCANSNAP_WIKITEXT_DIR
  fi
  step "execute the notebooks outside the repository, in parallel"
  .venv/bin/python tools/preexecute.py --require-installed
  step "jb build (executed, warnings are errors)"
  .venv/bin/jb build . -W -n --keep-going --all
fi
step "done"
