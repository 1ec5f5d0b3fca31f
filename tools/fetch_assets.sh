#!/usr/bin/env bash
# Fetch the pinned front-end assets the static site serves itself, so that no page requests a CDN:
#   _static_vendor/widgets/require.js      RequireJS (the ipywidgets embed bundle is an AMD module)
#   _static_vendor/widgets/embed-amd.js    @jupyter-widgets/html-manager (ipywidgets 8) + its fonts
#   _static_vendor/mathjax/es5/...         MathJax 3 (es5 build; the 20 MB speech-rule folder is dropped)
# They come through the ordinary npm client (`npm pack`), which checks each tarball against the
# registry's integrity hash; we additionally compare that hash with the one pinned below, so a
# re-published or tampered version fails loudly. _static_vendor/ is git-ignored: re-run this after a
# fresh clone (tools/setup_and_build.sh does).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/_static_vendor"

# name@version  sha512 integrity (from `npm pack --json`)
pins=(
  "@jupyter-widgets/html-manager@1.0.15 sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
  "requirejs@2.3.8 sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="
  "mathjax@3.2.2 sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)

stamp="$dest/.versions"
want="$(printf '%s\n' "${pins[@]}")"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dest/widgets/embed-amd.js" \
      && -f "$dest/widgets/require.js" && -f "$dest/mathjax/es5/tex-mml-chtml.js" ]]; then
  echo "fetch_assets: _static_vendor is up to date"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
specs=()
for pin in "${pins[@]}"; do specs+=("${pin%% *}"); done
(cd "$work" && npm pack "${specs[@]}" --json --silent > pack.json)

# Compare the integrity npm reports with our pins (python is always there: the venv exists by now).
python3 - "$work/pack.json" "${pins[@]}" <<'PY'
import json, sys
packed = {p["id"]: p["integrity"] for p in json.load(open(sys.argv[1]))}
for pin in sys.argv[2:]:
    spec, integrity = pin.split()
    if packed.get(spec) != integrity:
        sys.exit(f"fetch_assets: {spec} integrity {packed.get(spec)} != pinned {integrity}")
PY

rm -rf "$dest"
mkdir -p "$dest/widgets" "$dest/mathjax"
for tarball in "$work"/*.tgz; do
  name="$(basename "$tarball" .tgz)"
  mkdir -p "$work/$name"
  tar -xzf "$tarball" -C "$work/$name"
done
# Widget bundle: embed-amd.js plus the font files it loads relative to itself (no source maps).
find "$work/jupyter-widgets-html-manager-1.0.15/package/dist" -maxdepth 1 -type f \
  \( -name 'embed-amd.js' -o -name '*.woff2' -o -name '*.woff' -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) \
  -exec cp {} "$dest/widgets/" \;
# Licences travel with the files (html-manager BSD-3-Clause, RequireJS MIT, MathJax Apache-2.0: see each package.json).
cp "$work/jupyter-widgets-html-manager-1.0.15/package/package.json" "$dest/widgets/html-manager.package.json"
cp "$work/jupyter-widgets-html-manager-1.0.15/package/dist/embed.js.LICENSE.txt" "$dest/widgets/"
cp "$work/requirejs-2.3.8/package/require.js" "$dest/widgets/require.js"
cp "$work/requirejs-2.3.8/package/package.json" "$dest/widgets/requirejs.package.json"   # MIT
cp -r "$work/mathjax-3.2.2/package/es5" "$dest/mathjax/es5"
rm -rf "$dest/mathjax/es5/sre"   # speech-rule engine: 20 MB, only for assistive speech output
# The pages load one combined component (tex-mml-chtml.js, set as mathjax_path in _config.yml);
# the other combined builds (SVG output, "full", speech) are never requested.
find "$dest/mathjax/es5" -maxdepth 1 -type f -name '*.js' ! -name 'tex-mml-chtml.js' -delete
cp "$work/mathjax-3.2.2/package/package.json" "$dest/mathjax/package.json"
printf '%s\n' "$want" > "$stamp"
echo "fetch_assets: wrote $(du -sh "$dest" | cut -f1) to _static_vendor/"
