"""The dashboard's JavaScript, read as source: plain ES modules, one list of statuses and colours, every id
put into a URL encoded, nothing the Content-Security-Policy would refuse (no inline script, no style
attribute). The browser tests (test_browser*.py) run the same modules in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from wfcelery.tracker.states import NodeStatus, RunStatus
from wfcelery.web import STATIC

JS = STATIC / "js"
STATUS = "|".join(sorted({s.value for s in NodeStatus} | {s.value for s in RunStatus}))
#: Bases an untagged URL template may start from (the mount path, the element's server, a built URL,
#: a URLSearchParams query: all encoded already).
BASES = {"ROOT", "server", "url", "q"}


def modules() -> dict[str, str]:
    return {p.relative_to(STATIC).as_posix(): p.read_text() for p in sorted(STATIC.rglob("*.js"))}


def array(source: str, name: str) -> list[str]:
    found = re.search(rf"export const {name} = \[([^\]]*)\]", source)
    assert found, name
    return re.findall(r'"([A-Z]+)"', found.group(1))


def test_statuses_and_their_colours_are_listed_once_and_match_the_server():
    statuses = (JS / "statuses.js").read_text()
    assert set(array(statuses, "NODE_STATUSES")) == {s.value for s in NodeStatus}
    assert set(array(statuses, "RUN_STATUSES")) == {s.value for s in RunStatus}
    colours = dict(re.findall(r'([A-Z]+): "(#[0-9a-f]{6})"', statuses.split("export const COLORS", 1)[1]))
    assert set(colours) == {s.value for s in NodeStatus} | {s.value for s in RunStatus}
    for name, source in modules().items():
        if name == "js/statuses.js":
            continue
        assert not re.search(rf'"({STATUS})",\s*"({STATUS})"', source), f"{name} lists statuses"
        assert not re.search(rf'\b({STATUS})\s*:\s*"#', source), f"{name} colours a status"
        assert not set(colours.values()) & set(re.findall(r"#[0-9a-f]{6}", source)), (
            f"{name}: a status colour"
        )
    css = (STATIC / "app.css").read_text()
    assert not re.search(rf"\b({STATUS})\b", css), "app.css names a status: its classes come from statuses.js"


def _untagged_templates(source: str) -> list[str]:
    source = re.sub(r"\bpath`[^`]*`", "PATH", source)  # tagged: each value encoded
    return re.findall(r"(?<![\w$])`([^`]*)`", source)


def test_every_id_put_into_a_url_is_encoded():
    for name, source in modules().items():
        assert not re.search(r"[\"'][^\"']*/(api|runs|definitions)/[^\"']*[\"']\s*\+", source), name
        for template in _untagged_templates(source):
            if not re.search(r"/(api|runs|definitions)/", template):
                continue
            for value in re.findall(r"\$\{([^}]*)\}", template):
                assert value in BASES or value.startswith("encodeURIComponent("), (name, template)


def test_nothing_the_content_security_policy_refuses():
    for name, source in modules().items():
        assert not re.search(r"\bstyle\s*:\s*[\"'`]", source), f"{name}: a style attribute string"
        assert not re.search(r"setAttribute\(\s*[\"']style", source), name
        assert not re.search(r"\beval\(|new Function\(|setTimeout\(\s*[\"'`]", source), name
        for assignment in re.findall(r"innerHTML\s*=\s*([^;]+);", source):
            assert assignment.strip() == "MARKUP", f"{name}: innerHTML from {assignment}"  # a fixed template
    page = (STATIC / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [(' type="module" src="{{root}}/static/js/main.js"', "")]
    assert "style=" not in page
    assert not re.search(r"\son\w+=", page), "an inline event handler"


def test_the_modules_import_what_exists():
    for name, source in modules().items():
        here = (STATIC / name).parent
        for names, target in re.findall(r"import\s*\{([^}]*)\}\s*from\s*\"([^\"]+)\"", source):
            assert target.startswith("./") or target.startswith("../"), (name, target)
            module = (here / target).resolve()
            assert module.is_file(), (name, target)
            exported = set(
                re.findall(r"export (?:const|function|async function|class) (\w+)", module.read_text())
            )
            for imported in (n.strip() for n in names.split(",") if n.strip()):
                assert imported in exported, f"{name} imports {imported} from {target}"


def test_the_package_ships_every_static_file():
    """pyproject's package-data globs name each folder of the static files."""
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    for folder in {p.parent for p in STATIC.rglob("*") if p.is_file()}:
        glob = f"web/{folder.relative_to(STATIC.parent).as_posix()}/*"
        assert f'"{glob}"' in pyproject, glob


def test_the_credentials_go_in_a_header_only_never_in_a_url():
    """The stored credentials are read in js/auth.js alone, and sent only as the Authorization header;
    no dashboard module opens an EventSource (it cannot send that header: the run page reads its stream
    with fetch()). Only the embeddable element, for servers without credentials, uses EventSource."""
    for name, source in modules().items():
        if name != "js/auth.js":
            assert "sessionStorage" not in source, name
        if name != "js/wf-run-progress.js":
            assert "new EventSource" not in source, name
    auth = (JS / "auth.js").read_text()
    assert re.findall(r"sessionStorage\.getItem\(KEY\)", auth) == ["sessionStorage.getItem(KEY)"]
    assert "headers.Authorization = auth" in auth
