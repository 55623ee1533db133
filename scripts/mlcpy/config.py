"""Configuration: conf/mlconnector.conf (KEY=value lines) with environment
overrides.

The grammar is the one docs/CONFIG.md ("File format") states, shared with
app/config.c and scripts/mlc's load_config; all three are tested against
t/fixtures/config-grammar.json.  In short: blank lines and lines whose
first non-blank character is '#' are ignored; a line is [export ]KEY=value
with blanks (spaces, tabs) around KEY, '=' and the value ignored; a value
is either quoted whole in '...' or "..." (no escapes) or runs to the end of
the line or to a '#' that follows a blank; a CR before the line end is
ignored; anything else stops the load with "FILE:LINE: why".  A non-empty
environment variable of the same name wins over the file, and an empty
value means "use the default".
"""

import os
import re

# Keys the Python side introduced, with their defaults (docs/CONFIG.md).
DEFAULTS = {
    "MLC_VAR": "var",
    "MLC_DB_PORT": "3306",
    "MLC_DB_NAME": "mlconnector",
    "MLC_DB_USER": "mlc",
    "MLC_DB_PASSWORD": "",
    "MLC_DB_TIMEOUT": "5",
    "MLC_SPOOL_POLL": "0.2",
    "MLC_RECONCILE_INTERVAL": "2",
    "MLC_SPOOLER_ID": "",
    "MLC_SPOOLER_LEASE": "30",
    "MLC_BACKEND": "local",
    "MLC_RUNTIME_USER": "mlc-runtime",
    "MLC_SERVICE_USER": "mlconnector",
    "MLC_WEB_GROUP": "www-data",
    "MLC_RUNTIME_MEMORY": str(2 << 30),
    "MLC_RUNTIME_CPU": "1",
    "MLC_RUNTIME_PIDS": "512",
    "MLC_RUNTIME_START_TIMEOUT": "30",
    "MLC_RUNTIME_MAX_RESTARTS": "5",
    "MLC_RUNTIME_BACKOFF": "1",
    "MLC_RUNTIME_TMP_SIZE": str(64 << 20),
    "MLC_RUNTIME_LOG_MAX": str(64 << 20),
    "MLC_SANDBOX_PATHS": "",
    "MLC_BUNDLE_MAX_SIZE": str(4 << 30),
    "MLC_TRAIN_TIMEOUT": "600",
    "MLC_TRAIN_LOG_MAX": str(256 << 10),
    "MLC_TRAIN_MAX_JOBS": "2",
    "MLC_TRAIN_DISK": str(1 << 30),
    "MLC_TMP_MAX_AGE": "3600",
    "MLC_TMP_CLEAN_INTERVAL": "600",
    # Deployment backends beyond this host (docs/SCALING.md).
    "MLC_KUBECONFIG": "",
    "MLC_KUBE_NAMESPACE": "mlconnector",
    "MLC_KUBE_IMAGE": "mlconnector-runtime:1",
    "MLC_KUBE_PULL_POLICY": "",
    "MLC_KUBE_PULL_SECRET": "",
    "MLC_KUBE_INSTANCE": "mlconnector",
    "MLC_KUBE_API_URL": "",
    "MLC_KUBE_API_CIDR": "",
    "MLC_KUBE_ENDPOINT": "http://{name}.{namespace}.svc:8080",
    "MLC_KUBE_SERVICE_TYPE": "ClusterIP",
    "MLC_KUBE_START_TIMEOUT": "600",
    "MLC_NORTHBOUND_URL": "",
    "MLC_TRAIN_BACKEND": "local",
    # Keys of the C side the spooler needs too (for MLC_API_URL's default).
    "MLC_HOST": "127.0.0.1",
    "MLC_PORT": "8090",
    "MLC_MAX_UPLOAD": str(512 << 20),
    "MLC_AUTH": "on",
}


# The local MariaDB server's socket on Debian, where MLC_DB_HOST=localhost
# points (app/dbtarget.h has the same).
SYSTEM_DB_SOCKET = "/run/mysqld/mysqld.sock"


class ConfigError(Exception):
    """The config file cannot be read or has a line that is not KEY=value."""


def project_root():
    """The project root: the parent of the scripts/ directory holding mlcpy."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


BLANKS = " \t"
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse_line(line):
    """One line of the file, without its '\\n': None for a blank or comment
    line, else (key, value).  Raises ValueError(why) for a line that is not
    in the grammar."""
    if line.endswith("\r"):
        line = line[:-1]
    if "\0" in line:
        raise ValueError("NUL byte")
    s = line.lstrip(BLANKS)
    if not s or s[0] == "#":
        return None
    if s.startswith("export") and s[6:7] in (" ", "\t"):
        rest = s[6:].lstrip(BLANKS)
        if KEY_RE.match(rest[:1]):
            s = rest
    key, eq, value = s.partition("=")
    if not eq:
        raise ValueError("expected KEY=value")
    key = key.rstrip(BLANKS)
    if not KEY_RE.match(key):
        raise ValueError("invalid key '%s'" % key)
    v = value.lstrip(BLANKS)
    if v[:1] in ("'", '"'):
        close = v.find(v[0], 1)
        if close < 0:
            raise ValueError("no closing %s quote" % v[0])
        after = v[close + 1:]
        rest = after.lstrip(BLANKS)
        if rest and not (rest[0] == "#" and len(rest) < len(after)):
            raise ValueError("text after the closing quote")
        return key, v[1:close]
    # Unquoted: up to a '#' that follows a blank (in the line as written).
    for i in range(len(value)):
        if value[i] == "#" and i > 0 and value[i - 1] in BLANKS:
            value = value[:i]
            break
    return key, value.strip(BLANKS)


def parse_bytes(data, name):
    """The KEY=value pairs of a config file's bytes, as a dict (a later line
    for a key wins).  Bytes that are not UTF-8 are kept as surrogate
    escapes, as os.environ keeps them."""
    values = {}
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            item = parse_line(raw.decode("utf-8", "surrogateescape"))
        except ValueError as e:
            raise ConfigError("%s:%d: %s" % (name, n, e)) from None
        if item:
            values[item[0]] = item[1]
    return values


def parse_file(path):
    """The KEY=value pairs of a config file, as a dict (later lines win)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError("cannot read config '%s': %s" % (path, e.strerror)) from None
    return parse_bytes(data, path)


class Config:
    """Settings of one MLConnector instance, with derived paths."""

    def __init__(self, values, root, environ=None):
        self.root = root
        self._file = values
        self._env = os.environ if environ is None else environ
        var = self.get("MLC_VAR")
        self.var = var if os.path.isabs(var) else os.path.join(root, var)
        self.spool = os.path.join(self.var, "spool")
        self.deployments = os.path.join(self.var, "deployments")
        self.training = os.path.join(self.var, "training")
        self.log_dir = os.path.join(self.var, "log")
        self.run_dir = os.path.join(self.var, "run")
        self.artifacts = self.get("MLC_ARTIFACTS") or os.path.join(self.var, "artifacts")
        if not os.path.isabs(self.artifacts):
            self.artifacts = os.path.join(root, self.artifacts)

    def get(self, key, default=None):
        """A setting: non-empty environment variable, else non-empty file
        value, else the given default, else the built-in default."""
        env = self._env.get(key)
        if env:
            return env
        if self._file.get(key):
            return self._file[key]
        if default is not None:
            return default
        return DEFAULTS.get(key, "")

    def number(self, key, kind=float):
        """A numeric setting; a value that does not parse is an error that
        names the key (a silent default would hide the operator's typo)."""
        raw = self.get(key)
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError("%s=%r is not a number" % (key, raw)) from None

    def api_url(self):
        """Where the spooler reaches the API (to store trained models through
        POST /model/{id}/upload): MLC_API_URL, by default the address nginx
        listens on, http://MLC_HOST:MLC_PORT (a wildcard host means this
        machine)."""
        url = self.get("MLC_API_URL")
        if url:
            return url.rstrip("/")
        host = self.get("MLC_HOST")
        if host in ("0.0.0.0", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        return "http://%s:%s" % (host, self.get("MLC_PORT"))

    def auth_on(self):
        """Whether the API wants a bearer token (MLC_AUTH, on unless off)."""
        return self.get("MLC_AUTH").lower() != "off"

    def db_target(self):
        """Where the database is, by the rule app/dbtarget.h states for
        mlc-api too: ("socket", path) or ("tcp", host, port).

        MLC_DB_SOCKET set: that socket (MLC_DB_HOST must be empty or
        "localhost"); MLC_DB_HOST empty: the private server's socket
        $MLC_VAR/run/mysqld.sock; MLC_DB_HOST=localhost: the local server's
        socket /run/mysqld/mysqld.sock, as the mariadb client reads it; any
        other host: TCP to MLC_DB_HOST:MLC_DB_PORT.  Raises ConfigError when
        a host and a socket name two servers, or the port is no port."""
        host, sock = self.get("MLC_DB_HOST"), self.get("MLC_DB_SOCKET")
        local = host == "localhost"
        if sock and host and not local:
            raise ConfigError("MLC_DB_HOST=%s and MLC_DB_SOCKET=%s name two database servers; "
                              "set only one of them" % (host, sock))
        if sock:
            return ("socket", sock)
        if not host:
            return ("socket", os.path.join(self.run_dir, "mysqld.sock"))
        if local:
            return ("socket", SYSTEM_DB_SOCKET)
        port = self.number("MLC_DB_PORT", int)
        if not 0 < port < 65536:
            raise ConfigError("MLC_DB_PORT=%d is not a TCP port" % port)
        return ("tcp", host, port)

    def db_socket(self):
        """The unix socket of the database, or None when it is reached
        over TCP."""
        target = self.db_target()
        return target[1] if target[0] == "socket" else None

    def db_where(self):
        """The database's address for log lines."""
        target = self.db_target()
        if target[0] == "socket":
            return "unix socket %s" % target[1]
        return "%s port %d (TCP)" % (target[1], target[2])


def load(root=None, environ=None):
    """Read the instance's config: MLC_CONF or <root>/conf/mlconnector.conf."""
    env = os.environ if environ is None else environ
    root = root or project_root()
    path = env.get("MLC_CONF") or os.path.join(root, "conf", "mlconnector.conf")
    return Config(parse_file(path), root, env)
