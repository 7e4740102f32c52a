"""Start-up with a bad environment: one clear line naming the variable, no traceback, exit 1; .env.example complete."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OVERRIDDEN = (
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "DJANGO_SETTINGS_MODULE",
    "SECURE_COOKIES",
    "SERVE_MEDIA",
    # A run on S3 (tests/conftest.py, POPARENA_TEST_STORAGE=s3) names its bucket here for the servers it starts.
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
)


def manage(tmp_path: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in OVERRIDDEN}
    env["POPARENA_VAR_DIR"] = str(tmp_path)
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("environment", "variable", "detail"),
    [
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "is not a database URL"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL", "is not a database URL"),
        (
            {"DATABASE_URL": "postgres://user@host:port/db"},
            "DATABASE_URL",
            "could not be parsed (Port could not be cast to integer",
        ),
        ({"DATABASE_URL": "postgres://user@localhost:5432/"}, "DATABASE_URL", "names no database"),
        ({"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL", "is unreachable"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL", "is not a Redis URL"),
        ({"DEBUG": "false"}, "SECRET_KEY", "DEBUG is off but SECRET_KEY is the built-in development key"),
        ({"DEBUG": "maybe"}, "DEBUG", "is not a boolean"),
        # Every boolean, not only DEBUG: a typo must not quietly turn a safety off.
        ({"DEBUG": "false", "SECRET_KEY": "s" * 50, "SECURE_COOKIES": "flase"}, "SECURE_COOKIES", "is not a boolean"),
        ({"SERVE_MEDIA": "yes please"}, "SERVE_MEDIA", "is not a boolean"),
        ({"STATIC_MANIFEST": "2"}, "STATIC_MANIFEST", "is not a boolean"),
        ({"METRICS_AFTER_GENERATION": "ture"}, "METRICS_AFTER_GENERATION", "is not a boolean"),
        # Read only on PostgreSQL; it was read leniently, so "ture" quietly turned prepared statements off.
        (
            {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/never_opened", "DB_PREPARED_STATEMENTS": "ture"},
            "DB_PREPARED_STATEMENTS",
            "is not a boolean",
        ),
        ({"LEADERBOARD_PUSH_S": "fast"}, "LEADERBOARD_PUSH_S", "is not a number of seconds"),
        ({"LEADERBOARD_PUSH_S": "-1"}, "LEADERBOARD_PUSH_S", "is out of range"),
        ({"LEADERBOARD_PUSH_S": "nan"}, "LEADERBOARD_PUSH_S", "is out of range"),
    ],
)
def test_bad_environment_fails_at_start_with_one_line_naming_the_variable(tmp_path, environment, variable, detail):
    result = manage(tmp_path, "check", **environment)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"PopArena configuration error: {variable}: ")
    assert detail in lines[0]
    assert "Traceback" not in result.stderr


def test_no_environment_at_all_runs_on_sqlite_with_in_memory_channels(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.CHANNEL_LAYERS['default']['BACKEND'],"
        " s.STORAGES['default']['BACKEND'], sep='\\n')"
    )
    result = manage(tmp_path, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "channels.layers.InMemoryChannelLayer",
        "django.core.files.storage.FileSystemStorage",
    ]
    assert (tmp_path / "db.sqlite3").parent.exists()


def test_database_and_redis_urls_switch_to_postgresql_and_channels_redis(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'],"
        " s.CHANNEL_LAYERS['default']['BACKEND'], sep='\\n')"
    )
    result = manage(
        tmp_path,
        "shell",
        "--no-imports",
        "-c",
        code,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/somewhere",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        REDIS_CHECK_ON_START="false",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.postgresql",
        "somewhere",
        "channels_redis.core.RedisChannelLayer",
    ]


def test_production_defaults_hold_when_the_environment_sets_none_of_them(tmp_path):
    # Given an environment without any variable of .env.example (tests otherwise run with a dwell floor of 0),
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].strip().isupper()
    }
    assert {"VOTE_MIN_DWELL_MS", "THROTTLE_NEW_SESSION", "COMPARISON_IMAGE_TTL_S"} <= documented
    code = (
        "import json; from django.conf import settings as s; from arena.issuing import LEASE;"
        "print(json.dumps({'dwell': s.VOTE_MIN_DWELL_MS, 'rates': s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'],"
        " 'lease_s': LEASE.total_seconds(), 'image_ttl_s': s.COMPARISON_IMAGE_TTL_S,"
        " 'push_s': s.LEADERBOARD_PUSH_S}))"
    )
    env = {k: v for k, v in os.environ.items() if k not in documented and k not in OVERRIDDEN}
    env["POPARENA_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # then the running site has the defaults the README promises.
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "dwell": 500,
        "rates": {"vote": "1200/min", "anon": "12000/min", "token": "6000/min", "new_session": "60/hour"},
        "lease_s": 600.0,
        "image_ttl_s": 300,
        "push_s": 1.0,
    }


# How config/settings.py reads a variable: its name is the first argument of each of these.
READERS = ("env.", "env_bool", "os.environ.get", "os.getenv", "parse_")


def settings_reads() -> dict[str, set[str]]:
    """Every environment variable config/settings.py reads, with the reader(s) it goes through."""
    reads: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse((ROOT / "config" / "settings.py").read_text())):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        reader = ast.unparse(node.func)
        name = node.args[0]
        if reader.startswith(READERS) and isinstance(name, ast.Constant) and isinstance(name.value, str):
            reads.setdefault(name.value, set()).add(reader)
    return reads


def env_example() -> dict[str, str]:
    """Variable -> value in .env.example; a commented-out line (`# NAME=`, its default described) counts too."""
    found = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.lstrip("# ").partition("=")
        if sep and name.strip().isupper() and " " not in name.strip():
            found[name.strip()] = value.strip()
    return found


def test_env_example_lists_every_variable_settings_reads():
    reads = settings_reads()
    # The parser sees every kind of read (so a blind parser cannot pass by finding nothing).
    assert {"SECRET_KEY", "DB_POOL_MAX_SIZE", "ALLOWED_HOSTS", "DEBUG", "THROTTLE_VOTE", "LEADERBOARD_PUSH_S"} <= set(
        reads
    )
    missing = sorted(set(reads) - set(env_example()))
    assert missing == [], f"config/settings.py reads {missing}, which .env.example does not list"


def test_every_boolean_is_read_strictly_and_listed_with_a_value_that_reads():
    from config.startup import FALSE_WORDS, TRUE_WORDS

    reads = settings_reads()
    lenient = sorted(name for name, readers in reads.items() if "env.bool" in readers)
    assert lenient == [], f"read with django-environ's lenient env.bool instead of env_bool: {lenient}"
    example = env_example()
    booleans = [name for name, readers in reads.items() if "env_bool" in readers]
    assert "DB_PREPARED_STATEMENTS" in booleans
    for name in booleans:
        value = example[name].split("(")[0].strip()  # `# NAME=  (default: ...)` describes its default instead
        assert value == "" or value.lower() in TRUE_WORDS | FALSE_WORDS, (name, example[name])
