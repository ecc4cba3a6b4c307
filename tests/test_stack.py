"""docker-compose.yml validates, names every service, pins every image and refuses weak secrets.

No Docker engine is needed: `docker-compose config` (Debian's docker-compose 1.29, or the
compose v2 plugin where it exists) parses and interpolates the file. Tests run it with a
generated .env of strong random values, in a clean environment so a developer's own .env or
shell variables cannot change the outcome. docker/preflight.sh, the check the stack runs
before anything else, is run directly with good and bad values.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PREFLIGHT = ROOT / "docker" / "preflight.sh"

CORE_SERVICES = {
    "preflight", "postgres", "mongo", "airflow-init", "airflow-apiserver", "airflow-scheduler",
    "airflow-dag-processor", "airflow-triggerer", "metabase", "metabase-provision",
}
CELERY_SERVICES = {"redis", "airflow-worker"}
SPARK_SERVICES = {"spark-master", "spark-worker"}
ONE_SHOT = {"preflight", "airflow-init", "metabase-provision"}
AIRFLOW_SERVICES = {
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker",
}
# Required variables that are not secrets (an e-mail address).
NOT_SECRETS = {"INSIDERS_METABASE_USER"}


# --- running compose ----------------------------------------------------------------------


@cache
def compose_command() -> tuple[str, ...]:
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=60, check=False
    ).returncode == 0:
        return ("docker", "compose")
    pytest.fail(
        "docker-compose is not installed: `apt-get install -y docker-compose` "
        "(CI installs it; the compose v2 plugin works too)"
    )


@cache
def _is_v1() -> bool:
    result = subprocess.run([*compose_command(), "version", "--short"],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip().lstrip("v").startswith("1.")


def compose(
    env_file: Path, *args: str, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    # A clean environment: only what compose needs to run, so nothing leaks in from the shell.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    profile_args = [a for p in profiles for a in ("--profile", p)]
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE),
         "--project-directory", str(ROOT), *profile_args, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def compose_config(env_file: Path, profiles: tuple[str, ...] = ()) -> dict:
    """The resolved configuration as a dict."""
    if not _is_v1():
        result = compose(env_file, "config", "--format", "json", profiles=profiles)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    result = compose(env_file, "config", profiles=profiles)
    assert result.returncode == 0, result.stderr
    # docker-compose 1.x is a Python program that needs PyYAML: its own interpreter can parse
    # the YAML it prints (the project's environment has no YAML parser).
    script = shutil.which("docker-compose")
    assert script is not None
    with open(script, "rb") as fh:
        shebang = fh.readline().decode(errors="replace")
    assert shebang.startswith("#!"), "docker-compose 1.x without a Python shebang"
    interpreter = shebang[2:].strip().split()
    parsed = subprocess.run(
        [*interpreter, "-c",
         "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
        input=result.stdout, capture_output=True, text=True, timeout=60, check=False,
    )
    assert parsed.returncode == 0, parsed.stderr
    return json.loads(parsed.stdout)


def required_variables() -> set[str]:
    """Variables the compose file refuses to run without (`${VAR:?message}`)."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))


def strong_values() -> dict[str, str]:
    values = {name: secrets.token_hex(24) for name in required_variables()}
    values["AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values["INSIDERS_METABASE_USER"] = "analytics@insiders.test"
    return values


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_env(tmp_path_factory.mktemp("stack") / "strong.env", strong_values())


@pytest.fixture(scope="module")
def config(env_file: Path) -> dict:
    return compose_config(env_file)


@pytest.fixture(scope="module")
def celery_config(env_file: Path) -> dict:
    return compose_config(env_file, profiles=("celery",))


# --- the file validates -------------------------------------------------------------------


@pytest.mark.parametrize("profiles", [(), ("celery",), ("spark",)],
                         ids=["default", "celery", "spark"])
def test_config_validates(env_file: Path, profiles: tuple[str, ...]) -> None:
    result = compose(env_file, "config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("profiles", "expected"),
    [((), CORE_SERVICES), (("celery",), CORE_SERVICES | CELERY_SERVICES),
     (("spark",), CORE_SERVICES | SPARK_SERVICES)],
    ids=["default", "celery", "spark"],
)
def test_every_service_is_named(env_file: Path, profiles: tuple[str, ...],
                                expected: set[str]) -> None:
    result = compose(env_file, "config", "--services", profiles=profiles)
    assert result.returncode == 0, result.stderr
    assert expected <= set(result.stdout.split())


def test_celery_services_need_the_profile(config: dict, celery_config: dict) -> None:
    for name, service in celery_config["services"].items():
        wanted = ["celery"] if name in CELERY_SERVICES else (
            ["spark"] if name in SPARK_SERVICES else [])
        assert service.get("profiles", []) == wanted, name
    # compose v2 leaves inactive services out; 1.x lists them with their profile
    assert CORE_SERVICES <= set(config["services"])


def test_the_spark_profile_serves_the_dag(env_file: Path) -> None:
    """Tasks are told the engine and the master; workers see the run folders where the
    tasks write them."""
    spark = compose_config(env_file, profiles=("spark",))["services"]
    scheduler = spark["airflow-scheduler"]["environment"]
    assert scheduler["INSIDERS_ENGINE"] == "duckdb"  # Spark only when .env says so
    assert scheduler["INSIDERS_SPARK_MASTER"] == "spark://spark-master:7077"
    assert "spark.driver.port=4141" in scheduler["INSIDERS_SPARK_CONF"]
    home = scheduler["INSIDERS_HOME"]
    mounts = [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}"
              for v in spark["spark-worker"]["volumes"]]
    assert any(m.endswith(f":{home}") or f":{home}:" in m for m in mounts), mounts
    assert "spark://spark-master:7077" in " ".join(spark["spark-worker"]["command"])


def test_a_missing_secret_stops_compose(tmp_path: Path) -> None:
    values = strong_values()
    assert len(values) >= 10
    for name in sorted(values):
        partial = {k: v for k, v in values.items() if k != name}
        result = compose(write_env(tmp_path / f"{name}.env", partial), "config", "-q")
        assert result.returncode != 0, f"compose ran without {name}"
        assert name in result.stderr, result.stderr
        for other in partial.values():  # the error names the variable, never a value
            assert other not in result.stderr


# --- what the services look like ----------------------------------------------------------


def test_every_image_is_pinned(celery_config: dict) -> None:
    for name, service in celery_config["services"].items():
        image = service.get("image", "")
        assert image, f"{name} has no image name"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_long_running_services_have_healthchecks(celery_config: dict) -> None:
    for name, service in celery_config["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name


def _depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short form: no condition
        return dict.fromkeys(deps, "service_started")
    return {k: v.get("condition", "service_started") for k, v in deps.items()}


def test_start_order(celery_config: dict) -> None:
    services = celery_config["services"]
    for name, service in services.items():
        if name != "preflight":
            assert _depends(service).get("preflight") == "service_completed_successfully", name
    for name in AIRFLOW_SERVICES:
        deps = _depends(services[name])
        assert deps.get("postgres") == "service_healthy", name
        assert deps.get("airflow-init") == "service_completed_successfully", name
    assert _depends(services["airflow-init"]).get("postgres") == "service_healthy"
    assert _depends(services["airflow-worker"]).get("redis") == "service_healthy"
    assert _depends(services["metabase"]).get("postgres") == "service_healthy"
    assert _depends(services["metabase-provision"]).get("metabase") == "service_healthy"


def test_airflow_settings(config: dict, celery_config: dict) -> None:
    services = config["services"]
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
        "http://airflow-apiserver:8080/execution/")
    assert services["airflow-apiserver"]["command"] in ("api-server", ["api-server"])
    assert services["airflow-dag-processor"]["command"] in ("dag-processor", ["dag-processor"])
    assert env["INSIDERS_SQL_URL"].startswith("postgresql+psycopg://insiders_app:")
    # Airflow 3.3 builds an async engine too: without this URL it wants asyncpg (not installed)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://airflow:")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == env[
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg://", "+psycopg_async://")
    assert env["INSIDERS_MONGO_URI"].startswith("mongodb://insiders_app:")
    assert env["INSIDERS_MONGO_URI"].endswith("@mongo:27017/insiders?authSource=insiders")
    mounts = " ".join(str(v) for v in services["airflow-scheduler"]["volumes"])
    assert "/opt/airflow/project/dags" in mounts and "/opt/airflow/project/plugins" in mounts
    worker = celery_config["services"]["airflow-worker"]
    assert "container_name" not in worker and not worker.get("ports"), "must scale"


def test_metabase_reads_with_the_read_only_role(config: dict) -> None:
    services = config["services"]
    provision = services["metabase-provision"]
    env = provision["environment"]
    assert env["INSIDERS_METABASE_DB_USER"] == "insiders_reader"
    assert env["INSIDERS_METABASE_URL"] == "http://metabase:3000"
    assert "provision-metabase.sh" in " ".join(provision["entrypoint"])
    assert "insiders metabase provision" in (ROOT / "docker" / "airflow" /
                                             "provision-metabase.sh").read_text()
    assert services["metabase"]["environment"]["MB_DB_TYPE"] == "postgres"
    assert services["metabase"]["environment"]["MB_DB_USER"] == "metabase"
    # provisioning gets no MongoDB or Airflow secrets
    assert not any(k.startswith(("AIRFLOW__", "INSIDERS_MONGO")) for k in env)


def test_data_lives_in_named_volumes(config: dict) -> None:
    declared = set(config.get("volumes", {}))
    assert {"postgres-data", "mongo-data", "airflow-logs", "insiders-home"} <= declared

    def sources(name: str) -> set[str]:
        volumes = config["services"][name].get("volumes", [])
        return {v["source"] if isinstance(v, dict) else v.split(":")[0] for v in volumes}

    assert "postgres-data" in sources("postgres")
    assert "mongo-data" in sources("mongo")
    assert {"airflow-logs", "insiders-home"} <= sources("airflow-scheduler")


def test_ports_stay_on_this_machine_by_default(config: dict) -> None:
    published = []
    for name, service in config["services"].items():
        for port in service.get("ports", []):
            if not service.get("profiles"):  # compose 1.x lists profile services too
                published.append(name)
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:"
            assert str(text).startswith("127.0.0.1:"), (name, port)
    assert sorted(published) == ["airflow-apiserver", "metabase"]


def test_mongo_runs_with_authentication(config: dict) -> None:
    mongo = config["services"]["mongo"]
    assert "--auth" in mongo["command"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"]
    assert any("/docker-entrypoint-initdb.d" in str(v) for v in mongo["volumes"])


# --- secrets ------------------------------------------------------------------------------


def test_compose_file_holds_no_literal_secret() -> None:
    secret_key = re.compile(r"^\s*([A-Z0-9_]*(PASSWORD|PASS|SECRET|_KEY|_AUTH))\s*:\s*(.*)$")
    for number, line in enumerate(COMPOSE_FILE.read_text(encoding="utf-8").splitlines(), 1):
        match = secret_key.match(line)
        if match:
            assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", match[3]), (number, line)


def test_env_example_lists_every_required_variable_with_a_placeholder() -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert required_variables() <= set(example)
    for name in required_variables() - NOT_SECRETS:
        assert example[name] == "change-me", name


def test_preflight_checks_every_secret_compose_requires(config: dict) -> None:
    env = config["services"]["preflight"]["environment"]
    checked = set(env["PREFLIGHT_SECRETS"].split())
    assert checked == required_variables() - NOT_SECRETS
    assert set(env["PREFLIGHT_URL_SECRETS"].split()) <= checked
    assert checked <= set(env), "preflight must receive every value it checks"
    assert config["services"]["preflight"].get("network_mode") == "none"


def run_preflight(config: dict, overrides: dict[str, str | None]) -> subprocess.CompletedProcess:
    """docker/preflight.sh with the preflight service's environment, changed by `overrides`."""
    env = {k: str(v) for k, v in config["services"]["preflight"]["environment"].items()}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return subprocess.run(["sh", str(PREFLIGHT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_preflight_accepts_strong_values(config: dict) -> None:
    result = run_preflight(config, {})
    assert result.returncode == 0, result.stderr
    for value in config["services"]["preflight"]["environment"].values():
        if len(str(value)) >= 16 and " " not in str(value):
            assert str(value) not in result.stdout + result.stderr


def test_preflight_refuses_the_env_example_as_is(config: dict) -> None:
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    checked = config["services"]["preflight"]["environment"]["PREFLIGHT_SECRETS"].split()
    result = run_preflight(config, {name: example[name] for name in checked})
    assert result.returncode != 0
    for name in checked:
        assert re.search(rf"\b{name}\b", result.stderr), name


WEAK = ["change-me", "airflow", "admin", "password", "postgres", "metabase", "mongo", "example",
        "Password", "short1", "aaaaaaaaaaaaaaaaaaaa", ""]


@pytest.mark.parametrize("value", WEAK)
@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD",
                                  "INSIDERS_METABASE_PASSWORD", "AIRFLOW_JWT_SECRET"])
def test_preflight_refuses_weak_values(config: dict, name: str, value: str) -> None:
    result = run_preflight(config, {name: value})
    assert result.returncode != 0
    assert name in result.stderr
    if value and value not in PREFLIGHT.read_text(encoding="utf-8"):
        assert value not in result.stdout + result.stderr


def test_preflight_refuses_a_missing_value(config: dict) -> None:
    result = run_preflight(config, {"METABASE_ENCRYPTION_KEY": None})
    assert result.returncode != 0 and "METABASE_ENCRYPTION_KEY" in result.stderr


def test_preflight_refuses_a_reused_secret(config: dict) -> None:
    shared = secrets.token_hex(24)
    result = run_preflight(config, {"INSIDERS_DB_PASSWORD": shared,
                                    "INSIDERS_READER_PASSWORD": shared})
    assert result.returncode != 0
    assert "INSIDERS_READER_PASSWORD" in result.stderr and shared not in result.stderr


def test_preflight_refuses_passwords_that_break_urls(config: dict) -> None:
    value = "Zx9/" + secrets.token_hex(10) + "@host"
    result = run_preflight(config, {"INSIDERS_MONGO_PASSWORD": value})
    assert result.returncode != 0
    assert "INSIDERS_MONGO_PASSWORD" in result.stderr and value not in result.stderr


@pytest.mark.parametrize("value", [secrets.token_hex(22), "A" * 43 + "=" + "x"])
def test_preflight_refuses_a_bad_fernet_key(config: dict, value: str) -> None:
    result = run_preflight(config, {"AIRFLOW_FERNET_KEY": value})
    assert result.returncode != 0 and "AIRFLOW_FERNET_KEY" in result.stderr


def test_preflight_refuses_an_unknown_executor(config: dict) -> None:
    result = run_preflight(config, {"AIRFLOW_EXECUTOR": "KubernetesExecutor"})
    assert result.returncode != 0 and "AIRFLOW_EXECUTOR" in result.stderr


NO_DIGIT = "correct-horse-battery-staple"  # strong enough for preflight, but no digit


@pytest.mark.parametrize("value", [NO_DIGIT, "Tr0ub4dor-and-Horses"])
def test_preflight_applies_metabase_password_rule(config: dict, value: str) -> None:
    """Metabase's default rule needs a digit: without one, first-run setup answers 400."""
    result = run_preflight(config, {"INSIDERS_METABASE_PASSWORD": value})
    has_digit = any(c.isdigit() for c in value)
    assert (result.returncode == 0) == has_digit, result.stderr
    if not has_digit:
        assert "INSIDERS_METABASE_PASSWORD needs at least one digit" in result.stderr
    assert value not in result.stdout + result.stderr
    # the rule is Metabase's: another secret without a digit is fine
    assert run_preflight(config, {"AIRFLOW_ADMIN_PASSWORD": NO_DIGIT}).returncode == 0
