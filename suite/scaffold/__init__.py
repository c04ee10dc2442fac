"""``suite new-plugin NAME``: write an installable plugin package from a template.

Files under ``template/`` are copied with ``$name``/``$package``/``$title`` substituted
(``string.Template``); ``package/`` becomes the import package's folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from string import Template

from suite.errors import DataError

TEMPLATE_DIR = Path(__file__).parent / "template"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


def render_plugin(name: str, destination: Path) -> Path:
    """Write the package for plugin ``name`` into ``destination/suite-<name>``; return it."""
    if not NAME_PATTERN.match(name):
        raise DataError(f"plugin name '{name}' must be lowercase letters, digits and '_', starting with a letter")
    target = destination / f"suite-{name.replace('_', '-')}"
    if target.exists():
        raise DataError(f"{target} already exists; choose another name or folder")
    try:
        destination.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {destination}: {exc.strerror}") from None
    values = {"name": name, "package": f"suite_{name}", "title": name.replace("_", " ").title()}
    # Render into a temp folder first so a failure leaves nothing half-written.
    with tempfile.TemporaryDirectory(dir=destination) as staging:
        staged = Path(staging) / target.name
        for source in sorted(TEMPLATE_DIR.rglob("*")):
            if source.is_dir() or source.suffix == ".pyc":
                continue
            relative = source.relative_to(TEMPLATE_DIR).as_posix().replace("package/", f"{values['package']}/", 1)
            out = staged / relative.removesuffix(".tmpl")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
        shutil.move(str(staged), target)
    return target
