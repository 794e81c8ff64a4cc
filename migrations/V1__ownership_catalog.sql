-- servicedb's ownership catalog: which Kubernetes resource owns which database and role on
-- this server. Lives in the `servicedb` database, owned by the operator's admin role; PUBLIC
-- cannot connect, so only the admin (and superusers) can read or change it.

CREATE TABLE ${flyway:defaultSchema}.databases (
    database_name      TEXT PRIMARY KEY,
    resource_kind      TEXT NOT NULL,
    resource_namespace TEXT NOT NULL,
    resource_name      TEXT NOT NULL,
    service            TEXT NOT NULL,
    tenant             TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX databases_resource_idx
    ON ${flyway:defaultSchema}.databases (resource_kind, resource_namespace, resource_name);

CREATE TABLE ${flyway:defaultSchema}.roles (
    role_name            TEXT PRIMARY KEY,
    database_name        TEXT NOT NULL REFERENCES ${flyway:defaultSchema}.databases (database_name) ON DELETE CASCADE,
    purpose              TEXT NOT NULL,
    -- sha256 over (role, password): tells whether the role has its Secret's password
    -- without reading pg_authid or logging in.
    password_fingerprint TEXT,
    password_changed_at  TIMESTAMPTZ
);

CREATE INDEX roles_database_idx ON ${flyway:defaultSchema}.roles (database_name);
