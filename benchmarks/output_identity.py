"""Are exgan's outputs byte-identical to a recorded run? The check behind a no-behaviour-change refactor.

Runs the installed `exgan` (open-eyes, batch, inspect) on the README example and on the tests'
photos, in fresh processes, and hashes every file written: retouched photos (patched JPEG, fully
encoded PNG), compare images, and the JSON reports with their timing fields removed (wall-clock
times differ from run to run, and the temporary folder's name is replaced; nothing else may).

    python benchmarks/output_identity.py --record benchmarks/output_identity.json   # before
    python benchmarks/output_identity.py --check benchmarks/output_identity.json    # after

--check prints one line per case and exits 1 when any output differs. The recorded hashes hold
for one machine and torch build (float results are not bit-stable across CPUs); record again on a
new machine from the commit before the change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# name -> (command arguments after `exgan`, output files to hash). {out} is the case's folder.
CASES: dict[str, tuple[list[str], list[str]]] = {
    "readme-example": (
        ["open-eyes", "examples/hugo_chavez_closed.jpg", "--ref-dir", "examples/refs",
         "-o", "{out}/open.jpg", "--compare", "{out}/compare.jpg", "--report", "{out}/report.json"],
        ["open.jpg", "compare.jpg", "report.json"],
    ),
    "readme-example-png": (
        ["open-eyes", "examples/hugo_chavez_closed.jpg", "--ref-dir", "examples/refs",
         "-o", "{out}/open.png", "--no-detail", "--best-of", "1"],
        ["open.png"],
    ),
    "light-eyes-all-faces": (
        ["open-eyes", str(DATA / "photos" / "img6.jpg"), "--ref", str(DATA / "photos" / "img4.jpg"),
         "--faces", "all", "-o", "{out}/open.jpg", "--report", "{out}/report.json"],
        ["open.jpg", "report.json"],
    ),
    "group-photo-forced": (
        ["open-eyes", str(DATA / "photos" / "selfie-many-people.jpg"),
         "--ref", str(DATA / "photos" / "selfie-many-people.jpg"), "--faces", "all", "--face", "1",
         "--any-identity", "--force", "--no-self-check", "-o", "{out}/open.png", "--report", "{out}/report.json"],
        ["open.png", "report.json"],
    ),
    "lfw-closed-crop": (
        ["open-eyes", str(DATA / "closed_eyes" / "closed_eye_0656.jpg_face_1.jpg"),
         "--ref-dir", str(DATA / "lfw" / "Colin_Powell"), "--any-identity", "--force",
         "-o", "{out}/open.jpg", "--report", "{out}/report.json"],
        ["open.jpg", "report.json"],
    ),
    "batch-album": (
        ["batch", str(DATA / "lfw" / "Hugo_Chavez"), "--person-dir", "examples/refs", "--all-faces",
         "--workers", "0", "--copy-unchanged", "-o", "{out}/album", "--quiet"],
        ["album/*"],
    ),
    "inspect-example": (
        ["inspect", "examples/hugo_chavez_closed.jpg", "--ref-dir", "examples/refs", "--json"],
        ["stdout"],
    ),
}

TIMING_KEYS = {"seconds", "time", "elapsed", "timings", "wall_s", "duration"}


def _strip_timings(value):
    if isinstance(value, dict):
        return {k: _strip_timings(v) for k, v in value.items() if k not in TIMING_KEYS and not k.endswith(("_seconds", "_per_second"))}
    if isinstance(value, list):
        return [_strip_timings(v) for v in value]
    return value


def _digest(path: Path, tmp: str) -> str:
    data = path.read_bytes()
    if path.suffix == ".json" or path.name == "stdout":
        data = data.replace(tmp.encode(), b"<tmp>")  # reports name the output files
        try:
            data = json.dumps(_strip_timings(json.loads(data)), sort_keys=True).encode()
        except json.JSONDecodeError:
            pass
    elif path.suffix == ".jsonl":
        data = data.replace(tmp.encode(), b"<tmp>")
        lines = [json.dumps(_strip_timings(json.loads(line)), sort_keys=True) for line in data.splitlines()]
        data = "\n".join(lines).encode()
    return hashlib.sha256(data).hexdigest()


def run_cases(exgan: list[str]) -> dict[str, dict[str, str]]:
    """Run every case in a fresh process with an empty cache; {case: {file: sha256}}."""
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, EXGAN_CACHE_DIR=str(Path(tmp) / "cache"))
        for name, (args, files) in CASES.items():
            out = Path(tmp) / name
            out.mkdir()
            cmd = exgan + [a.format(out=out) for a in args]
            done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
            (out / "stdout").write_bytes(done.stdout)
            digests = {"exit": str(done.returncode)}
            for pattern in files:
                paths = sorted(out.glob(pattern)) if "*" in pattern else [out / pattern]
                for p in paths:
                    digests[str(p.relative_to(out))] = _digest(p, tmp) if p.exists() else "missing"
            results[name] = digests
            print(f"{name}: exit {done.returncode}", file=sys.stderr)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path, help="Write the hashes of this checkout's outputs here.")
    group.add_argument("--check", type=Path, help="Compare this checkout's outputs with these hashes.")
    args = ap.parse_args()
    results = run_cases([sys.executable, "-m", "exgan_cli"])
    if args.record:
        args.record.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"recorded {sum(len(v) for v in results.values())} outputs of {len(results)} cases in {args.record}")
        return 0
    recorded = json.loads(args.check.read_text())
    bad = 0
    for name, digests in results.items():
        want = recorded.get(name)
        diff = [f for f in digests if want is None or want.get(f) != digests[f]]
        bad += bool(diff)
        print(f"{name:24s} {'identical' if not diff else 'DIFFERS: ' + ', '.join(diff)}")
    print("all outputs byte-identical" if not bad else f"{bad} case(s) differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
