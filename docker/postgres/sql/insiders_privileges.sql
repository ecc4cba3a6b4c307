-- Privileges on the `insiders` SQL store. Run as a superuser while connected to that database,
-- after the roles insiders_app (owner, writer) and insiders_reader (Metabase) exist and the
-- database is owned by insiders_app. Plain SQL (no psql meta-commands) so that
-- tests/test_postgres_roles.py can apply the very same file. Safe to re-run.

-- Nobody but the named roles may connect; the reader may connect but not create temp tables.
DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO insiders_app', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO insiders_reader', current_database());
END
$$;

-- The writer owns the schema the tables live in. PostgreSQL 15+ already revokes CREATE on
-- public from PUBLIC; say it anyway so older servers get the same rights.
ALTER SCHEMA public OWNER TO insiders_app;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO insiders_reader;

-- Read-only: SELECT on the tables there now and, through default privileges, on every table
-- insiders_app creates later (the DAG's sync creates them on its first run).
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM insiders_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO insiders_reader;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO insiders_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE insiders_app IN SCHEMA public
  GRANT SELECT ON TABLES TO insiders_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE insiders_app IN SCHEMA public
  GRANT SELECT ON SEQUENCES TO insiders_reader;

-- Belt and braces: the reader's sessions start read-only, so even a grant made by mistake
-- later does not let Metabase write.
ALTER ROLE insiders_reader SET default_transaction_read_only = on;
ALTER ROLE insiders_reader NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE insiders_app NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
