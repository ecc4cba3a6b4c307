"""No secret is committed: the repository's files are scanned for credentials.

Scans what git would commit (`git ls-files -co --exclude-standard`: tracked files and
untracked files that are not ignored) for private keys, cloud and service tokens, URLs with
an inline password, `PASSWORD=...`-style assignments with a real-looking value, and any `.env`
file other than `.env.example`. Placeholders (`change-me`, `${VAR}`, `<password>`, `...`, the
well-known defaults the stack refuses anyway) are fine. A line that must keep a fake value
that looks real can say so with `pragma: allowlist secret`.

Findings name the file, the line and the rule, never the value.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOW_MARKER = "pragma: allowlist secret"
MAX_BYTES = 2_000_000
ENV_TEMPLATES = {".env.example", ".env.sample", ".env.template", ".env.dist"}

# Values that are obviously not secrets: stand-ins and the defaults preflight refuses.
PLACEHOLDER_WORDS = {
    "password", "passwd", "pass", "pwd", "secret", "token", "key", "changeme", "change-me",
    "change_me", "example", "placeholder", "redacted", "dummy", "fake", "test", "testing",
    "none", "null", "true", "false", "airflow", "admin", "postgres", "metabase", "mongo",
    "mongodb", "root", "redis", "insiders", "default", "xxx",
}
PLACEHOLDER_PARTS = (
    "change-me", "changeme", "change_me", "replace", "placeholder", "example", "dummy",
    "fake", "redacted", "your-", "your_", "password", "secret",
)
# Unquoted values in these files are code (a variable, a call), not literals.
CODE_SUFFIXES = (".py", ".js", ".mjs", ".cjs", ".ts", ".java", ".go", ".rb")

# Assignments to names that end in a secret word are checked: FOO_PASSWORD=...,
# "secret_key": "...", PGPASSWORD=... (but not passed_tests=... or max_tokens=...).
_SECRET_NAME = (
    r"(?:[A-Za-z0-9_.-]*[_.-])?(?:pg)?(?:password|passwd|pass|pwd|secret|token|auth|"
    r"api[_-]?key|access[_-]?key|private[_-]?key|fernet[_-]?key|encryption[_-]?key|"
    r"secret[_-]?key|credentials?)"
)
_ASSIGNMENT = re.compile(
    r"""(?ix)
    (?:^|[\s{,(;])(?:export\s+)?
    (?P<q>["']?)(?P<name>""" + _SECRET_NAME + r""")(?P=q)
    \s*(?::|=|:=)\s*
    (?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s#,;'"]+))
    """
)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://(?P<user>[^\s:/@'\"]+):(?P<pw>[^\s@/'\"]+)@")

_PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile("-----BEGIN ((RSA|DSA|EC|OPENSSH|PGP|ENCRYPTED) )?PRIVATE KEY"
                              "( BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe live key": re.compile(r"\b[rs]k_live_[0-9A-Za-z]{20,}\b"),
    "OpenAI-style key": re.compile(r"\bsk-(proj-)?[A-Za-z0-9_-]{32,}\b"),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def is_placeholder(value: str) -> bool:
    """True for values that stand in for a secret rather than being one."""
    v = value.strip().strip("\"'")
    lower = v.lower()
    if len(v) < 8:  # too short to be a real credential; preflight refuses such values anyway
        return True
    if v[0] in "$<{%(*[" or "${" in v or "{{" in v or "$(" in v or "%(" in v:
        return True  # a reference or a template: ${VAR}, <password>, {{ secret }}, %(pw)s
    if lower in PLACEHOLDER_WORDS or any(part in lower for part in PLACEHOLDER_PARTS):
        return True
    if len(set(v)) <= 2:  # xxxxxxxx, ********, ........
        return True
    if re.search(r"\s", v):  # prose: "password is too common."
        return True
    if re.fullmatch(r"[A-Za-z][a-z]+", v):  # a plain word ("password: generate a ...")
        return True
    if re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", v):  # an identifier: :'airflow_pw'
        return True
    if re.fullmatch(r"[A-Z][A-Z0-9_]*", v):  # the name of an environment variable
        return True
    if re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+(\(.*)?", v):
        return True  # code: settings.metabase_password, os.environ.get(...)
    return False


def scan_text(text: str, path: str) -> list[Finding]:
    findings: list[Finding] = []
    is_code = path.endswith(CODE_SUFFIXES)
    for number, line in enumerate(text.splitlines(), start=1):
        if ALLOW_MARKER in line:
            continue
        for rule, pattern in _PATTERNS.items():
            if pattern.search(line):
                findings.append(Finding(path, number, rule))
        for match in _URL_PASSWORD.finditer(line):
            if not is_placeholder(match["pw"]):
                findings.append(Finding(path, number, "URL with an inline password"))
        for match in _ASSIGNMENT.finditer(line):
            if line[max(0, match.start("name") - 2):match.start("name")] == "${":
                continue  # shell/compose expansion: ${FOO_PASSWORD:?message}
            value = match["dq"] if match["dq"] is not None else match["sq"]
            if value is None:
                if is_code:
                    continue
                value = match["bare"]
            if not is_placeholder(value):
                findings.append(Finding(path, number, f"secret assigned to {match['name']}"))
    return findings


def scan_file(path: Path, root: Path) -> list[Finding]:
    rel = path.relative_to(root).as_posix()
    name = path.name
    findings = []
    if (name == ".env" or name.startswith(".env.")) and name not in ENV_TEMPLATES:
        findings.append(Finding(rel, 0, "an .env file is committed (keep it ignored)"))
    try:
        if path.stat().st_size > MAX_BYTES:
            return findings
        data = path.read_bytes()
    except OSError:
        return findings
    if b"\0" in data[:8192]:
        return findings  # binary
    return findings + scan_text(data.decode("utf-8", errors="replace"), rel)


def repo_files(root: Path) -> list[Path]:
    """What git would commit: tracked files plus untracked files that are not ignored."""
    result = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root, capture_output=True, check=True, timeout=60,
    )
    names = [n for n in result.stdout.decode("utf-8", errors="replace").split("\0") if n]
    return [root / n for n in sorted(set(names)) if (root / n).is_file()]


def scan_repo(root: Path) -> list[Finding]:
    return [f for path in repo_files(root) for f in scan_file(path, root)]


# --- the repository -----------------------------------------------------------------------


def test_the_repository_has_no_secrets() -> None:
    findings = scan_repo(ROOT)
    assert not findings, "possible secrets (replace with ${VAR} from .env):\n" + "\n".join(
        map(str, findings)
    )


def test_the_scan_sees_the_stack_files() -> None:
    scanned = {p.relative_to(ROOT).as_posix() for p in repo_files(ROOT)}
    assert {"docker-compose.yml", ".env.example", "docker/preflight.sh"} <= scanned
    assert ".env" not in scanned, ".env must stay ignored"


# --- the scanner catches planted secrets --------------------------------------------------
# Built from pieces so that this file itself holds no secret-looking literal.

_STRONG = "q7" + "Hk2mZ9vR4wLx8N"
PLANTED = {
    "private key": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow" + "IBAAKCAQEA\n",
    "openssh key": "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n",
    "aws key": "aws_access_key_id = " + "AKIA" + "J7QXZ2M4K8W3R9TB\n",
    "aws secret": "AWS_SECRET_ACCESS_KEY=" + "wJalr" + "XUtnFEMI/K7MDENG/bPxRfiCYz9k2q1X\n",
    "github": "token: " + "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\n",
    "url password": "INSIDERS_MONGO_URI=mongodb://app:" + _STRONG + "@mongo:27017/insiders\n",
    "sqlalchemy url": 'url = "postgresql+psycopg://insiders_app:' + _STRONG + '@db/insiders"\n',
    "env assignment": "POSTGRES_PASSWORD=" + _STRONG + "\n",
    "export": "export METABASE_ENCRYPTION_KEY=" + _STRONG + "\n",
    "yaml": "      MB_DB_PASS: " + _STRONG + "\n",
    "python constant": 'REDIS_PASSWORD = "' + _STRONG + '"\n',
    "json": '{"password": "' + _STRONG + '"}\n',
    "fernet": "AIRFLOW__CORE__FERNET_KEY: " + "d6Vefz3G9U_ynXB3cr7y" + "_Ak35tAHkEGAVxuz_B-jzWw=\n",
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_a_planted_secret_is_found(tmp_path: Path, kind: str) -> None:
    planted = tmp_path / ("settings.py" if kind == "python constant" else "notes.txt")
    planted.write_text("harmless first line\n" + PLANTED[kind], encoding="utf-8")
    findings = scan_file(planted, tmp_path)
    assert findings, kind
    assert all(f.line == 2 for f in findings), findings
    assert all(_STRONG not in str(f) for f in findings), "findings must not echo the value"


PLACEHOLDERS = [
    "POSTGRES_PASSWORD=change-me",
    "POSTGRES_PASSWORD=",
    "AIRFLOW__CORE__FERNET_KEY: ${AIRFLOW_FERNET_KEY:?set AIRFLOW_FERNET_KEY in .env}",
    "      MB_DB_PASS: ${METABASE_DB_PASSWORD:?set METABASE_DB_PASSWORD in .env}",
    "INSIDERS_SQL_URL=postgresql+psycopg://insiders_app:...@postgres:5432/insiders",
    "INSIDERS_MONGO_URI=mongodb://user:pass@mongo:27017/insiders?authSource=insiders",
    "url = 'postgresql+psycopg://postgres@127.0.0.1:54329/insiders_test'",
    "mongodb://$${INSIDERS_MONGO_USER}:$${INSIDERS_MONGO_PASSWORD}@127.0.0.1:27017/x",
    '    password = settings.metabase_password',
    '    "password": password,',
    'PASSWORD_ENV = "INSIDERS_METABASE_PASSWORD"',
    "export PGPASSWORD=<password>",
    "AIRFLOW_ADMIN_PASSWORD=********",
    '{"password": "{{ metabase_password }}"}',
    "POSTGRES_PASSWORD=postgres",
    "a line with a real-looking PASSWORD=" + _STRONG + "  # " + ALLOW_MARKER,
]


@pytest.mark.parametrize("line", PLACEHOLDERS)
def test_placeholders_and_references_are_not_secrets(line: str) -> None:
    assert scan_text(line + "\n", "settings.py" if "settings." in line else "file.yml") == []


def test_a_committed_env_file_is_found(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=" + _STRONG + "\n", encoding="utf-8")
    (tmp_path / ".env.example").write_text("POSTGRES_PASSWORD=change-me\n", encoding="utf-8")
    (tmp_path / ".env.production").write_text("# empty\n", encoding="utf-8")
    rules = {(f.path, f.rule.split(" ")[0]) for f in scan_repo(tmp_path)}
    assert (".env", "an") in rules and (".env", "secret") in rules
    assert (".env.production", "an") in rules
    assert not any(path == ".env.example" for path, _ in rules)

    # once ignored, git would not commit it, and the scan does not see it
    (tmp_path / ".gitignore").write_text(".env\n.env.production\n", encoding="utf-8")
    assert scan_repo(tmp_path) == []
