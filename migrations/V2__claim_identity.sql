-- Claims name the installation that made them (one id per cluster or dev state directory),
-- so two clusters sharing a server never both own a database, and the database's oid, so a
-- database dropped and re-created by someone else is never adopted.

ALTER TABLE ${flyway:defaultSchema}.databases
    ADD COLUMN installation_id TEXT,
    ADD COLUMN database_oid    OID;

-- Claims made before this migration: the database then existing under the name is the one
-- servicedb created. Their installation is left NULL: the first installation to reconcile
-- the same resource records itself.
UPDATE ${flyway:defaultSchema}.databases d
   SET database_oid = p.oid
  FROM pg_catalog.pg_database p
 WHERE p.datname = d.database_name;
