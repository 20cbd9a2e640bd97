# GPU set-up for hfavatar on a GPU machine without internet access (python3 3.12 with torch, numpy 2, no
# nerfstudio).
#
# On the GPU machine, with the wheel bundle copied to .whl/ in the repo root:
#     source benchmarks/gpu_setup.sh
# It installs the wheel bundle .whl/ into /tmp/site (no index, no deps), puts /tmp/site and the repo root on
# PYTHONPATH (the repo is not pip-installed there), sets MPLBACKEND=Agg and prints what it runs on.
# Then e.g.:  python3 benchmarks/quality_benchmark.py --data /tmp/tiny --preset tiny --steps 3 --mesh-resolution 32
#
# To (re)build the bundle on a developer machine (needs PyPI; writes cp312 manylinux x86_64 wheels):
#     bash benchmarks/gpu_setup.sh --build            # -> .whl/ (about 38 MB; .whl/ is in .git/info/exclude)
#     bash benchmarks/gpu_setup.sh --build 3.11 DIR   # same distributions for another Python (a CPU rehearsal)
# The bundle holds only what our imports need and such a machine lacks (it has python3, torch and numpy).
# numpy is not bundled: the stack runs on the machine's numpy 2. tensorly and libigl are repacked without
# files nothing imports (tensorly's example data sets; libigl's static libraries, C++ headers and docs) to
# keep the bundle well under 64 MiB. shapely/rtree/svg.path (optional in trimesh), open3d, av,
# wandb, comet and the other nerfstudio requirements that are never imported are left out.
#
# Knobs: PYTHON (default python3), HFAVATAR_WHL (default <repo>/.whl), HFAVATAR_SITE (default /tmp/site).

_hfavatar_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# name==version of every bundled distribution (binary ones have cp311 and cp312 manylinux wheels).
_HFAVATAR_WHEELS="
nerfstudio==1.1.5
nerfacc==0.5.2
gsplat==1.4.0
viser==0.2.7
tyro==1.0.17
typeguard==4.6.1
docstring_parser==0.18.0
msgspec==0.22.0
websockets==17.4
trimesh==5.2.0
embreex==4.4.0.post1
libigl==2.6.3
PyMCubes==0.1.6
roma==1.8.0
appdirs==1.4.4
pathos==0.3.5
multiprocess==0.70.19
dill==0.4.1
ppft==1.7.8
pyquaternion==0.9.9
pytorch-msssim==1.0.0
rawpy==0.28.0
fpsample==0.3.3
splines==0.3.0
tensorly==0.10.0
"

_hfavatar_build() {
    local pyver="${1:-3.12}" dest="${2:-$_hfavatar_root/.whl}" py="${PYTHON:-python3}" spec
    mkdir -p "$dest" || return 1
    local platforms=""
    for p in manylinux_2_35_x86_64 manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 \
        manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
        platforms="$platforms --platform $p"
    done
    for spec in $_HFAVATAR_WHEELS; do
        # shellcheck disable=SC2086
        "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" --implementation cp \
            $platforms -d "$dest" "$spec" 2>&1 | grep -v "is ignored" || true
        find "$dest" -maxdepth 1 -iname "$(echo "${spec%%==*}" | tr '-' '_')-${spec##*==}-*.whl" | grep -q . \
            || { echo "gpu_setup: no wheel for $spec (python $pyver)" >&2; return 1; }
    done
    # Drop files that nothing imports; RECORD is rewritten to match.
    "$py" - "$dest" <<'EOF'
import glob, os, sys, zipfile

drop = {
    "tensorly-": ("tensorly/datasets/data/",),
    "libigl-": ("lib64/", "include/", "share/", "embree-vars."),
}
for prefix, paths in drop.items():
    for wheel in glob.glob(os.path.join(sys.argv[1], prefix + "*.whl")):
        with zipfile.ZipFile(wheel) as source:
            entries = [(i, source.read(i)) for i in source.infolist()]
        if not any(i.filename.startswith(paths) for i, _ in entries):
            continue  # already repacked
        kept = [(i, data) for i, data in entries if not i.filename.startswith(paths)]
        tmp = wheel + ".tmp"
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for info, data in kept:
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(l for l in lines if not l.startswith(paths)).encode()
                out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, wheel)
        print(f"repacked {os.path.basename(wheel)}: {os.path.getsize(wheel) / 2**20:.1f} MiB")
EOF
    du -sh "$dest"
}

_hfavatar_setup() {
    local py="${PYTHON:-python3}" whl="${HFAVATAR_WHL:-$_hfavatar_root/.whl}" site="${HFAVATAR_SITE:-/tmp/site}"
    if ! ls "$whl"/*.whl >/dev/null 2>&1; then
        echo "gpu_setup: no wheels in $whl (copy the bundle there; build it with --build)" >&2
        return 1
    fi
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$whl"/*.whl \
        || { echo "gpu_setup: pip install of $whl failed" >&2; return 1; }
    # The repo is only on PYTHONPATH: give it a dist-info so nerfstudio finds the hfavatar methods (ns-train
    # hfavatar-lite) and the zju-mocap data parser through their entry points, as a pip install would.
    "$py" - "$_hfavatar_root" "$site" <<'EOF' || return 1
import pathlib, re, sys

root, site = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
text = (root / "pyproject.toml").read_text()
version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)
info = site / f"hfavatar-{version}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hfavatar\nVersion: {version}\n")
(info / "top_level.txt").write_text("dataparsers\nhfavatar_ns\n")
sections = []
for match in re.finditer(r"^\[project\.(scripts|entry-points\.'([^']+)')\]\n((?:[^\[\n].*\n?)*)", text, re.M):
    group = "console_scripts" if match.group(1) == "scripts" else match.group(2)
    body = "".join(
        f"{k.strip()} = {v.strip().strip(chr(34))}\n"
        for k, v in (line.split("=", 1) for line in match.group(3).splitlines() if "=" in line)
    )
    sections.append(f"[{group}]\n{body}")
(info / "entry_points.txt").write_text("\n".join(sections))
EOF
    export PYTHONPATH="$site:$_hfavatar_root${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$site/bin:$PATH"
    export MPLBACKEND=Agg
    "$py" - <<'EOF'
import sys

import numpy
import torch

print(f"python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__} "
      f"(cuda {torch.version.cuda}, available {torch.cuda.is_available()}), numpy {numpy.__version__}")
try:
    import cv2

    # OpenCV 5 dropped undistortPointsIter (undistortPoints takes the criteria there instead).
    print(f"opencv {cv2.__version__}, undistortPointsIter: {hasattr(cv2, 'undistortPointsIter')}")
except Exception as error:  # noqa: BLE001
    print(f"opencv: not importable ({type(error).__name__}: {error})")
try:
    import tinycudann  # noqa: F401

    print("tinycudann: importable")
except Exception as error:  # noqa: BLE001
    print(f"tinycudann: not importable ({type(error).__name__}: {error})")
EOF
    if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; else echo "nvidia-smi: not found"; fi
}

if [ "${1:-}" = "--build" ]; then
    shift
    _hfavatar_build "$@"
    _rc=$?
    # shellcheck disable=SC2317
    return "$_rc" 2>/dev/null || exit "$_rc"
else
    _hfavatar_setup
    _rc=$?
    if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        echo "gpu_setup: run with 'source' so that PYTHONPATH and MPLBACKEND stay set" >&2
    fi
    # shellcheck disable=SC2317
    return "$_rc" 2>/dev/null || exit "$_rc"
fi
