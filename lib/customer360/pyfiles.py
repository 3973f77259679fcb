"""Package the code for ``spark-submit --py-files``: one zip holding ``customer360/`` with its
configuration at ``customer360/conf/`` (the layout of the wheel), so executors and the driver
import the same code without installing it.

    python -m customer360.pyfiles dist/customer360.zip
    spark-submit --py-files dist/customer360.zip jobs/run_pipeline.py --env prod --region all

The third-party dependencies (setup.py's install_requires) must be installed on every node; a
wheel (``python -m pip wheel --no-deps -w dist .``) is the alternative where nodes pip-install.
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _conf_dir() -> Path:
    packaged = PACKAGE / "conf"  # an installed wheel carries it
    return packaged if (packaged / "base.yaml").is_file() else PACKAGE.parents[1] / "conf"


def build(target: str | Path) -> Path:
    """Write the zip and return its path (parent folders are created)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    conf = _conf_dir()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(PACKAGE.rglob("*.py")):
            if "__pycache__" not in path.parts and conf not in path.parents:
                archive.write(path, f"customer360/{path.relative_to(PACKAGE).as_posix()}")
        archive.writestr("customer360/conf/__init__.py", "")
        archive.writestr("customer360/conf/regions/__init__.py", "")
        for path in sorted(conf.rglob("*.yaml")):
            archive.write(path, f"customer360/conf/{path.relative_to(conf).as_posix()}")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m customer360.pyfiles OUT.zip", file=sys.stderr)
        return 2
    print(build(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
