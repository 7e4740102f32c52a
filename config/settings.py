"""PopArena settings: one module read from the environment (django-environ).

With no environment at all the site runs on the embedded default: SQLite, the in-memory
channel layer, local media files and the built-in offline generators. DATABASE_URL switches
to PostgreSQL and REDIS_URL to the channels-redis layer without code changes. Every
variable is listed with its default in .env.example.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ

from config.startup import check_redis, fail, parse_bool, parse_database_url, parse_rate, parse_seconds

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer's .env is read if present; real environment variables win over it.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEFAULT_SECRET_KEY = "django-insecure-poparena-local-development-only"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default=DEFAULT_SECRET_KEY)


def env_bool(variable: str, *, default: bool) -> bool:
    """Every boolean variable strictly: a typo such as SECURE_COOKIES=flase must not silently mean False."""
    return parse_bool(variable, os.environ.get(variable), default=default)


DEBUG = env_bool("DEBUG", default=True)
if not DEBUG and SECRET_KEY == DEFAULT_SECRET_KEY:
    fail("SECRET_KEY", "DEBUG is off but SECRET_KEY is the built-in development key; set a secret one")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Runtime data of the embedded default (database, media) lives in var/, outside the code.
VAR_DIR = Path(env.str("POPARENA_VAR_DIR", default=str(BASE_DIR / "var")))

INSTALLED_APPS = [
    "daphne",  # first, so runserver serves the ASGI application
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's JS and CSS as our own static files: no CDN
    "channels",
    "core",
    "access",
    "generation",
    "metrics",
    "annotation",
    "arena",
    "exports",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.CrossSiteFrameCookiesMiddleware",  # outside SessionMiddleware: it sees the cookies set
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
]
# The JSON API under /api/v1/ runs without what only pages need (config/api_handler.py says
# why each one is left out); its responses still refuse framing and carry the security headers.
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.RejectNulMiddleware",
    "core.middleware.CrossSiteFrameCookiesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.middleware.ApiHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    _database = parse_database_url(DATABASE_URL)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    _database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(VAR_DIR / "db.sqlite3")}
if _database["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the generation worker write concurrently: WAL lets readers go on
    # during a write, IMMEDIATE takes the write lock up front instead of failing mid-transaction.
    _database.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # Under ASGI, Django's persistent connections are not reused across requests; a pool per
    # server process is (Django 5.1+ with psycopg_pool). Opening a connection costs more than a
    # vote's queries, so every request would otherwise pay for one. DB_POOL_MAX_SIZE=0 turns it off.
    _pool_max = env.int("DB_POOL_MAX_SIZE", default=8)
    if _pool_max > 0:
        _database.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
            "max_size": _pool_max,
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        _database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
        _database["CONN_HEALTH_CHECKS"] = True
    # Server-side binding lets psycopg prepare a statement a connection has run a few times
    # (prepare_threshold), so PostgreSQL stops parsing and planning the hot path's queries anew.
    if env_bool("DB_PREPARED_STATEMENTS", default=True):
        _database.setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
DATABASES = {"default": _database}
# API requests one server process runs at once (config/api_handler.py). As many as the pool has
# connections: a request let in then gets one at once, and the rest queue in the event loop,
# with no timeout, instead of in 200 threads that wait DB_POOL_TIMEOUT for a connection and fail.
API_CONCURRENCY = env.int("API_CONCURRENCY", default=_database.get("OPTIONS", {}).get("pool", {}).get("max_size", 0))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer and cache ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    if env_bool("REDIS_CHECK_ON_START", default=True):
        check_redis(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("CHANNEL_PREFIX", default="poparena")},
        }
    }
    CACHES = {
        "default": {
            # Django's backend, reusing one Redis client per process (see core/cache.py).
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_PREFIX", default="poparena"),
        }
    }
    # Sessions are read on every vote: from the shared cache, written through to the database.
    # Only with a shared cache: a per-process one could hand another server process a stale session.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- static and media files -------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Server-side exports (the export page and API) are folders on the disk of the host that ran them, outside MEDIA_ROOT
# (served publicly) and outside object storage; with several web hosts this is a folder they all mount (README).
EXPORTS_ROOT = Path(env.str("EXPORTS_ROOT", default=str(VAR_DIR / "exports")))

# Hashed, compressed static files need `collectstatic`; development and tests use the finders.
_static_backend = (
    "whitenoise.storage.CompressedManifestStaticFilesStorage"
    if env_bool("STATIC_MANIFEST", default=not DEBUG)
    else "django.contrib.staticfiles.storage.StaticFilesStorage"
)
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    # S3-compatible object storage through django-storages (AWS, MinIO, Ceph, ...): the one media store that every
    # host of a deployment shares. Every image reader and writer goes through the storage API, never a local path.
    # The keys stay in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), where boto3 reads them.
    _media_storage: dict = {"BACKEND": "core.media_storage.S3MediaStorage"}
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
    # "path" for servers without a DNS name per bucket (MinIO, a bare IP address); empty lets boto3 choose.
    AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="") or None
    AWS_LOCATION = env.str("AWS_LOCATION", default="")
    # Participants get images only through their comparison's minted URLs (arena/image_urls.py); the direct links
    # of staff pages are presigned (SigV4) and expire, over a private bucket (no ACL, no listing).
    AWS_QUERYSTRING_AUTH = env_bool("AWS_QUERYSTRING_AUTH", default=True)
    AWS_QUERYSTRING_EXPIRE = int(
        parse_seconds("AWS_QUERYSTRING_EXPIRE", os.environ.get("AWS_QUERYSTRING_EXPIRE"), default=3600, maximum=604800)
    )
    AWS_S3_SIGNATURE_VERSION = "s3v4"
    AWS_DEFAULT_ACL = None
    # As on the local disk, saving under a name already taken picks another name instead of replacing the file.
    AWS_S3_FILE_OVERWRITE = False
else:
    _media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {"default": _media_storage, "staticfiles": {"BACKEND": _static_backend}}
# Local media files are served by the application itself in the embedded default; a
# production deployment points MEDIA_URL at object storage or a CDN and turns this off.
SERVE_MEDIA = env_bool("SERVE_MEDIA", default=not AWS_STORAGE_BUCKET_NAME)

# --- auth, sessions, security -----------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 30)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# MTurk shows a HIT in a cross-site iframe, where browsers send no SameSite=Lax cookie. On: the session
# and CSRF cookies of MTurk's framed pages (and of the sessions they begin) are SameSite=None; Secure;
# Partitioned (core.middleware.CrossSiteFrameCookiesMiddleware); every other cookie stays Lax. Needs
# HTTPS. Deployments running MTurk campaigns turn it on.
CROSS_SITE_FRAME_COOKIES = env_bool("CROSS_SITE_FRAME_COOKIES", default=False)
# JSON bodies are small (a vote is a few hundred bytes); refuse anything far larger early.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
# One image a remote generation worker uploads (a 1024 px PNG is a few MB).
GENERATION_UPLOAD_MAX_BYTES = env.int("GENERATION_UPLOAD_MAX_BYTES", default=16 * 1024 * 1024)
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
    if env_bool("BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    # Scripts and workers send `Authorization: Bearer pa_...`; the browser keeps its session + CSRF.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Sessions and anonymous callers as before (each view adds its own rules); a token needs its scopes.
    "DEFAULT_PERMISSION_CLASSES": ["access.permissions.TokenScopes"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": [
        "access.throttling.ParticipantThrottle",
        "access.throttling.IpThrottle",
        "access.throttling.TokenThrottle",
    ],
    # Far above what people do: 200 scripted participants behind one address must still fit.
    # 0 or off turns one off.
    "DEFAULT_THROTTLE_RATES": {
        "vote": parse_rate("THROTTLE_VOTE", os.environ.get("THROTTLE_VOTE"), default="1200/min"),
        "anon": parse_rate("THROTTLE_ANON", os.environ.get("THROTTLE_ANON"), default="12000/min"),
        "token": parse_rate("THROTTLE_TOKEN", os.environ.get("THROTTLE_TOKEN"), default="6000/min"),
        # Comparisons for sessions that hold none yet, per address (access.throttling.NewSessionThrottle): a lab
        # of 30 people behind one address fits twice over; raise it for larger groups behind one address.
        "new_session": parse_rate("THROTTLE_NEW_SESSION", os.environ.get("THROTTLE_NEW_SESSION"), default="60/hour"),
    },
    # How many reverse proxies append to X-Forwarded-For; 0 trusts only the socket's address,
    # so a client cannot dodge the per-address throttle with a forged header.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PopArena API",
    "DESCRIPTION": "Population-level human preference on generated images.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from our static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # WCAG 2.1 AA (tests/browser/test_accessibility.py): without deep links Swagger UI puts no link inside each
    # operation's button (nested-interactive); the light "idea" theme's examples meet 4.5:1, agate's numbers do not.
    "SWAGGER_UI_SETTINGS": {"deepLinking": False, "syntaxHighlight": {"theme": "idea"}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_common_error_responses",
    ],
}
# How long /api/v1/health waits for its message to come back through the channel layer.
HEALTH_CHANNEL_TIMEOUT_S = env.float("HEALTH_CHANNEL_TIMEOUT_S", default=2.0)
# Live leaderboards: each board is refitted and pushed at most once per this many seconds, however
# many votes land and pages watch; the votes of an interval reach every open page at its end.
# 0 pushes after every vote (one fit per vote and board).
LEADERBOARD_PUSH_S = parse_seconds(
    "LEADERBOARD_PUSH_S", os.environ.get("LEADERBOARD_PUSH_S"), default=1.0, maximum=60.0
)

# --- PopArena ---------------------------------------------------------------------------
# Key for hashing crowd workers' ids; the raw ids are never stored. Changing it splits every
# crowd worker from their earlier participant, so set it once per deployment.
# Where an MTurk ExternalQuestion may hand a finished assignment back (turkSubmitTo): only these.
MTURK_SUBMIT_ORIGINS = env.list(
    "MTURK_SUBMIT_ORIGINS", default=["https://www.mturk.com", "https://workersandbox.mturk.com"]
)
# Who may frame an MTurk campaign's pages (CSP frame-ancestors): the sites above and MTurk's worker site.
MTURK_FRAME_ANCESTORS = env.list("MTURK_FRAME_ANCESTORS", default=[*MTURK_SUBMIT_ORIGINS, "https://worker.mturk.com"])
# A vote sooner than this after its comparison was issued is refused: nobody has looked at the images yet.
VOTE_MIN_DWELL_MS = env.int("VOTE_MIN_DWELL_MS", default=500)
# How long a comparison's image URLs (minted per comparison, arena/image_urls.py) keep working after its vote;
# an unvoted comparison's stop when its lease runs out.
COMPARISON_IMAGE_TTL_S = env.int("COMPARISON_IMAGE_TTL_S", default=300)
if COMPARISON_IMAGE_TTL_S < 0:
    fail("COMPARISON_IMAGE_TTL_S", f"{COMPARISON_IMAGE_TTL_S} is negative; give the seconds as a whole number >= 0")
PARTICIPANT_HASH_KEY = env.str("PARTICIPANT_HASH_KEY", default="") or f"participants:{SECRET_KEY}"
# Where built-in offline pipelines are built once and loaded from with from_pretrained.
POPARENA_MODEL_CACHE = Path(env.str("POPARENA_MODEL_CACHE", default=str(VAR_DIR / "models")))
# The one folder researchers' local CLIP models (a campaign's metrics_attributes "model") may come from;
# anything else must be a hub id (metrics/config.py says why: no probing of the server's folders).
METRICS_MODELS_DIR = Path(env.str("METRICS_MODELS_DIR", default=str(VAR_DIR / "metrics-models")))
# Where train_generator saves fine-tuned pipelines (diffusers layout), one folder per new generator.
TRAINED_MODELS_DIR = Path(env.str("TRAINED_MODELS_DIR", default=str(VAR_DIR / "trained")))
# The generation worker on the CPU: torch threads (0: every core but one, left to the web server
# that usually shares the machine; one on a 2-core machine) and images per pipeline call.
GENERATION_CPU_THREADS = env.int("GENERATION_CPU_THREADS", default=0)
GENERATION_MAX_BATCH = env.int("GENERATION_MAX_BATCH", default=8)
# Draws of one image that came back blank (a safety checker's black square, a provider's placeholder) before
# its set fails and its prompt is shown to the researcher; each blank draw is redrawn with a new seed.
GENERATION_BLANK_TRIES = env.int("GENERATION_BLANK_TRIES", default=3)
# Hosted image APIs as generators (generation/providers/): how hard one worker presses one provider. A
# generator's own settings may lower these, never raise them; keys come only from the variable its
# `api_key_env` names.
GENERATION_API_MAX_CONCURRENCY = env.int("GENERATION_API_MAX_CONCURRENCY", default=4)
GENERATION_API_REQUESTS_PER_MINUTE = env.float("GENERATION_API_REQUESTS_PER_MINUTE", default=60.0)
GENERATION_API_MAX_RETRIES = env.int("GENERATION_API_MAX_RETRIES", default=4)
GENERATION_API_MAX_WAIT_S = env.float("GENERATION_API_MAX_WAIT_S", default=60.0)
GENERATION_API_TIMEOUT_S = env.float("GENERATION_API_TIMEOUT_S", default=120.0)
for _name, _low in (
    ("GENERATION_API_MAX_CONCURRENCY", 1),
    ("GENERATION_API_REQUESTS_PER_MINUTE", 0.01),
    ("GENERATION_API_MAX_RETRIES", 0),
    ("GENERATION_API_MAX_WAIT_S", 0),
    ("GENERATION_API_TIMEOUT_S", 1),
):
    if globals()[_name] < _low:
        fail(_name, f"{globals()[_name]} is below {_low}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Population metrics (issue 14): compute them for each population right after it is stored.
METRICS_AFTER_GENERATION = env_bool("METRICS_AFTER_GENERATION", default=True)
