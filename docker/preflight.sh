#!/bin/sh
# Refuse to start the stack with a missing, placeholder or well-known secret.
#
# docker-compose.yml runs this as the one-shot `preflight` service and every other service
# waits for it to succeed. It reads the names to check from the environment:
#   PREFLIGHT_SECRETS      names of variables holding secrets (checked for strength)
#   PREFLIGHT_URL_SECRETS  subset that is pasted into connection URLs (must be URL-safe)
#   PREFLIGHT_FERNET_KEYS  subset that must be an Airflow Fernet key (32 url-safe base64 bytes)
#   PREFLIGHT_MIN_LENGTH   shortest accepted secret (default 16)
#   PREFLIGHT_METABASE_PASSWORDS  Metabase user passwords (default INSIDERS_METABASE_PASSWORD):
#                          Metabase's own rule (MB_PASSWORD_COMPLEXITY=normal, the default)
#                          also needs a digit, else first-run setup answers 400 and nothing
#                          gets provisioned
# It prints the names of the offending variables and why, never their values.
# POSIX sh: runs in any image (the stack uses the postgres image, already pulled).

min_length=${PREFLIGHT_MIN_LENGTH:-16}
# Values shipped as examples or used as defaults by the images and tutorials.
weak_values="airflow admin administrator password passw0rd postgres postgresql metabase mongo
mongodb example secret changeme change-me change_me root redis insiders insiders_app
insiders_reader test default letmein qwerty 123456 12345678 123456789 1234567890"
failures=0

fail() {
    echo "preflight: $1" >&2
    failures=$((failures + 1))
}

# Indirect expansion without bash: the name is checked first, so eval only ever sees
# a plain identifier. Sets $value.
load() {
    case $1 in
        '' | [0-9]* | *[!A-Za-z0-9_]*)
            echo "preflight: invalid variable name in the check list" >&2
            exit 2
            ;;
    esac
    eval "value=\${$1-}"
}

is_listed() {
    for listed in $2; do
        [ "$listed" = "$1" ] && return 0
    done
    return 1
}

seen=""  # "name=checksum" pairs, to spot one secret reused for two roles
for name in ${PREFLIGHT_SECRETS:-}; do
    load "$name"
    if [ -z "$value" ]; then
        fail "$name is not set: put a generated value in .env (see .env.example)"
        continue
    fi
    lower=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
    case $lower in
        *change-me* | *changeme* | *change_me* | *replace-me* | *placeholder* | *example*)
            fail "$name still holds the placeholder from .env.example: generate a real value"
            continue
            ;;
    esac
    if is_listed "$lower" "$weak_values"; then
        fail "$name is a well-known default password: generate a real value"
        continue
    fi
    if [ "${#value}" -lt "$min_length" ]; then
        fail "$name is shorter than $min_length characters: generate a longer value"
        continue
    fi
    distinct=$(($(printf '%s' "$value" | fold -w1 | sort -u | wc -l)))
    if [ "$distinct" -lt 6 ]; then
        fail "$name uses fewer than 6 distinct characters: generate a random value"
        continue
    fi
    sum=$(printf '%s' "$value" | cksum | cut -d' ' -f1,2 | tr ' ' '-')
    for pair in $seen; do
        if [ "${pair#*=}" = "$sum" ]; then
            fail "$name has the same value as ${pair%%=*}: give each its own secret"
        fi
    done
    seen="$seen $name=$sum"
done

# Metabase (src/metabase/util/password.clj, complexity :normal): at least 6 characters and
# one digit, and not one of its ~12,000 common passwords (the length rule above and the
# weak list cover those here).
for name in ${PREFLIGHT_METABASE_PASSWORDS:-INSIDERS_METABASE_PASSWORD}; do
    load "$name"
    [ -z "$value" ] && continue
    case $value in
        *[0-9]*) ;;
        *) fail "$name needs at least one digit: Metabase refuses passwords without one (first-run setup would fail); use e.g. openssl rand -hex 24" ;;
    esac
done

for name in ${PREFLIGHT_URL_SECRETS:-}; do
    load "$name"
    case $value in
        *[!A-Za-z0-9._~-]*)
            fail "$name must be URL-safe (letters, digits, . _ ~ -): it is pasted into a connection URL; use e.g. openssl rand -hex 24"
            ;;
    esac
done

for name in ${PREFLIGHT_FERNET_KEYS:-}; do
    load "$name"
    [ -z "$value" ] && continue
    # 32 bytes in url-safe base64: 43 characters and one "=" of padding.
    body=${value%=}
    case $body in
        *[!A-Za-z0-9_-]*) fernet_ok=no ;;
        *) if [ "${#body}" -eq 43 ] && [ "${#value}" -eq 44 ]; then fernet_ok=yes; else fernet_ok=no; fi ;;
    esac
    if [ "$fernet_ok" != yes ]; then
        fail "$name is not a Fernet key (32 bytes in url-safe base64, 44 characters); see docs/deploy.md"
    fi
done

executor=${AIRFLOW_EXECUTOR:-LocalExecutor}
case $executor in
    LocalExecutor | CeleryExecutor) ;;
    *) fail "AIRFLOW_EXECUTOR must be LocalExecutor or CeleryExecutor" ;;
esac

if [ "$failures" -gt 0 ]; then
    echo "preflight: $failures problem(s); the stack will not start until .env is fixed" >&2
    exit 1
fi
echo "preflight: secrets look fine"
