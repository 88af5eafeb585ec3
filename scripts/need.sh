# Sourced by scripts/test and scripts/sandbox: `need WHO PACKAGE…` installs the
# Debian packages that are missing when run as root with apt-get, or prints the
# one command that does and exits. `missing_pg` and friends say which are.

# The Debian packages among "postgresql postgresql-client" not yet here.
pg_packages() {
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
    echo postgresql
  fi
  command -v psql >/dev/null || echo postgresql-client
}

# The Debian packages for the MariaDB test server (testkit/src/mariadb.rs) not yet here:
# the server (its PAM plugin, auth_pam, ships with it), the client, and pam_exec.so (in
# libpam-modules), which hands the token to the testkit's verifier. The PAM service itself is
# written by the harness, per server, because it names that server's random port.
mariadb_packages() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || echo mariadb-server
  command -v mariadb >/dev/null || echo mariadb-client
  compgen -G "/usr/lib/*/security/pam_exec.so" >/dev/null \
    || compgen -G "/lib/*/security/pam_exec.so" >/dev/null || echo libpam-modules
}

need() {
  local who="$1"; shift
  [ "$#" -gt 0 ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$who: installing $*" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    return
  fi
  {
    echo "$who: needs: $*"
    if command -v apt-get >/dev/null; then
      echo "install them with:"
      echo "  sudo apt-get install -y $*"
    else
      echo "install them with your package manager (macOS: brew install postgresql@16 python zsh fish)"
    fi
    echo "then run $who again"
  } >&2
  exit 1
}
