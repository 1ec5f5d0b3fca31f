#!/usr/bin/env bash
# Mutation measurement of scansnap/theory.py and scansnap/metrics.py with mutmut (outside CI).
#
# Runs in a throw-away copy of the committed tree under /tmp, in its own venv (not the project's
# .venv, whose editable install would import the unmutated package), with only the matching tests:
#   tests/test_theory.py tests/test_metrics.py tests/test_phase.py
# Usage (from the repository root):  benchmarks/mutation.sh [MUTANT_NAME_GLOB ...]
# Env: MUTVENV (default /tmp/mutvenv), MUTRUN (default /tmp/mutrun), MUTMUT_CHILDREN (default 1).
# Afterwards: cd $MUTRUN && $MUTVENV/bin/mutmut results     (survivors; `mutmut show NAME` diffs)
set -euo pipefail
MUTVENV=${MUTVENV:-/tmp/mutvenv}
MUTRUN=${MUTRUN:-/tmp/mutrun}
ROOT=$(git rev-parse --show-toplevel)
if [ ! -x "$MUTVENV/bin/mutmut" ]; then
  python3 -m venv "$MUTVENV"
  "$MUTVENV/bin/pip" install -q -r "$ROOT/requirements.txt" mutmut==3.8.1
fi
rm -rf "$MUTRUN" && mkdir -p "$MUTRUN"
git -C "$ROOT" archive HEAD scansnap tests pyproject.toml | tar -x -C "$MUTRUN"
# pyproject.toml has no [tool.mutmut] table, so mutmut reads this setup.cfg.
cat > "$MUTRUN/setup.cfg" <<'CFG'
[mutmut]
source_paths = scansnap
only_mutate =
    scansnap/theory.py
    scansnap/metrics.py
pytest_add_cli_args_test_selection =
    tests/test_theory.py
    tests/test_metrics.py
    tests/test_phase.py
pytest_add_cli_args = -p no:cacheprovider -q
CFG
cd "$MUTRUN"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
"$MUTVENV/bin/mutmut" run --max-children "${MUTMUT_CHILDREN:-1}" "$@"
"$MUTVENV/bin/mutmut" results
