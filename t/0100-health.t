#!/usr/bin/python3
# GET /health: the service answers, says whether its database does, and
# which version of mlc-api runs.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import mlctap as t

t.need_instance()

VERSION = t.project_version()
HEALTHY = {"status": "ok", "database": "ok", "version": VERSION}

resp = t.get("/health")
t.is_status(resp, 200, "GET /health answers 200 while the database is up")
t.is_json(resp, "GET /health sends a JSON body as application/json")
t.is_(t.body_of(resp), HEALTHY,
      "GET /health reports the service and the database as ok, and the version of "
      "configure.ac (%s)" % VERSION)

# Each request may reach a different worker; all of them must be healthy.
codes = [t.get("/health").status_code for _ in range(20)]
t.is_(sorted(set(codes)), [200], "20 GET /health in a row all answer 200 (every worker is connected)")

resp = t.get("/health", params={"verbose": "1"})
t.is_(t.body_of(resp), HEALTHY, "GET /health ignores a query string it does not use")

if all(os.environ.get(v) for v in ("MLC_DB_SOCKET", "MLC_DB_USER", "MLC_DB_NAME")):
    rows = t.db_rows("SELECT version, name FROM schema_version WHERE version = 1")
    t.is_(rows, [{"version": 1, "name": "001-models.sql"}],
          "the database records schema version 1 (001-models.sql) as applied")
    tables = {list(r.values())[0] for r in t.db_rows("SHOW TABLES")}
    t.ok({"models", "model_tags", "schema_version"} <= tables,
         "the database has the tables models, model_tags and schema_version",
         "tables: %s" % sorted(tables))
else:
    t.skip("the database records schema version 1", "needs MLC_DB_SOCKET, MLC_DB_USER, MLC_DB_NAME")
    t.skip("the database has the models tables", "needs MLC_DB_SOCKET, MLC_DB_USER, MLC_DB_NAME")

t.done()
