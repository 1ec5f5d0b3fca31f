#!/usr/bin/env bash
# Mutation measurement of a module set of scansnap with mutmut (outside CI).
#
# Runs in a throw-away copy of the committed tree under /tmp, in its own venv (not the project's
# .venv, whose editable install would import the unmutated package), with only the matching tests.
# Module sets (MUTSET):
#   theory-metrics (default)  scansnap/theory.py scansnap/metrics.py
#                             tests: test_theory.py test_metrics.py test_phase.py
#   training                  scansnap/dynamics.py scansnap/grouped.py
#                             tests: test_dynamics.py test_models.py test_bad_inputs.py
# Usage (from the repository root):  [MUTSET=training] benchmarks/mutation.sh [MUTANT_NAME_GLOB ...]
# Env: MUTVENV (default /tmp/mutvenv), MUTRUN (default /tmp/mutrun-$MUTSET), MUTMUT_CHILDREN
# (default 1); MUTSAMPLE=N [MUTSEED=S, default 0]: test a random sample of N mutants (drawn with
# Python's random.Random(S).sample from the sorted list of all mutant names) instead of all;
# MUTPREFIX=P draws it only from names starting with P (e.g. scansnap.grouped. for one module).
# Afterwards: cd $MUTRUN && $MUTVENV/bin/mutmut results     (survivors; `mutmut show NAME` diffs)
set -euo pipefail
MUTSET=${MUTSET:-theory-metrics}
MUTVENV=${MUTVENV:-/tmp/mutvenv}
MUTRUN=${MUTRUN:-/tmp/mutrun-$MUTSET}
ROOT=$(git rev-parse --show-toplevel)
case "$MUTSET" in
  theory-metrics)
    MODULES="scansnap/theory.py scansnap/metrics.py"
    TESTS="tests/test_theory.py tests/test_metrics.py tests/test_phase.py" ;;
  training)
    MODULES="scansnap/dynamics.py scansnap/grouped.py"
    TESTS="tests/test_dynamics.py tests/test_models.py tests/test_bad_inputs.py" ;;
  *) echo "MUTSET must be theory-metrics or training, got '$MUTSET'" >&2; exit 2 ;;
esac
if [ ! -x "$MUTVENV/bin/mutmut" ]; then
  python3 -m venv "$MUTVENV"
  "$MUTVENV/bin/pip" install -q -r "$ROOT/requirements.txt" mutmut==3.8.1
fi
rm -rf "$MUTRUN" && mkdir -p "$MUTRUN"
git -C "$ROOT" archive HEAD scansnap tests pyproject.toml | tar -x -C "$MUTRUN"
# pyproject.toml has no [tool.mutmut] table, so mutmut reads this setup.cfg.
{
  echo "[mutmut]"
  echo "source_paths = scansnap"
  echo "only_mutate ="
  for m in $MODULES; do echo "    $m"; done
  echo "pytest_add_cli_args_test_selection ="
  for t in $TESTS; do echo "    $t"; done
  echo "pytest_add_cli_args = -p no:cacheprovider -q"
} > "$MUTRUN/setup.cfg"
cd "$MUTRUN"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
MUTMUT="$MUTVENV/bin/mutmut"
if [ -n "${MUTSAMPLE:-}" ]; then
  # Generate the mutants and the test statistics only (a name that matches nothing stops mutmut
  # right after), then draw the sample from every mutant name in the .meta files.
  "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" 'no-such-mutant' >/dev/null 2>&1 || true
  mapfile -t SAMPLE < <("$MUTVENV/bin/python" - "$MUTSAMPLE" "${MUTSEED:-0}" "${MUTPREFIX:-}" <<'PY'
import json, pathlib, random, sys
names = sorted(k for meta in pathlib.Path("mutants").rglob("*.meta")
               for k in json.loads(meta.read_text())["exit_code_by_key"]
               if k.startswith(sys.argv[3]))
n = min(int(sys.argv[1]), len(names))
print(f"# {n} of {len(names)} mutants {sys.argv[3]}*, seed {sys.argv[2]}", file=sys.stderr)
print("\n".join(random.Random(int(sys.argv[2])).sample(names, n)))
PY
)
  printf '%s\n' "${SAMPLE[@]}" > sample.txt
  "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "${SAMPLE[@]}" "$@"
else
  "$MUTMUT" run --max-children "${MUTMUT_CHILDREN:-1}" "$@"
fi
"$MUTMUT" results | grep -v ": not checked$" || true
# Score per module over the mutants tested (killed and timeouts count as killed).
"$MUTVENV/bin/python" - <<'PY'
import collections, json, pathlib
from mutmut.stats import status_by_exit_code
for meta in sorted(pathlib.Path("mutants").rglob("*.meta")):
    status = collections.Counter(status_by_exit_code[c]
                                 for c in json.loads(meta.read_text())["exit_code_by_key"].values())
    tested = sum(v for k, v in status.items() if k != "not checked")
    killed = status["killed"] + status["timeout"]
    print(f"{meta.name[:-5]}: {killed} / {tested} killed"
          + (f" ({100 * killed / tested:.1f} %)" if tested else ""), dict(status))
PY
