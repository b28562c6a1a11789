-- Nimbus's two database roles and its database (docs/audit.md, "Append-only").
--
-- Run once, as a PostgreSQL superuser, with psql variables:
--   psql -v ON_ERROR_STOP=1 -v database=nimbus \
--        -v owner=nimbus_owner -v owner_password=... \
--        -v app=nimbus_app -v app_password=... -f roles.sql
-- (deploy/postgres/init-roles.sh does so in the postgres container.)
--
-- owner: owns the database, its schemas and tables; runs the migrations and
--   creates, restores and drops tenants. Nothing else connects as it.
-- app: what the web, listener, worker and beat processes connect as. It owns
--   nothing and is no superuser, so it can neither disable the audit trail's
--   triggers, nor set session_replication_role, nor create or drop schemas;
--   on the audit tables it may only read and insert (audit/apps.py revokes
--   the rest after each migration).
-- Safe to run again: what exists is kept, and the passwords are set anew.

\set ON_ERROR_STOP 1

SELECT format('CREATE ROLE %I', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I', :'app')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec

ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    NOREPLICATION NOBYPASSRLS PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
ALTER DATABASE :"database" OWNER TO :"owner";
-- No schemas of its own (CREATE on the database is the owner's alone).
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"app";

\connect :"database"

-- public holds the platform's tables; PostgreSQL 15 gives it to the
-- database's owner, older versions let anyone create in it.
ALTER SCHEMA public OWNER TO :"owner";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- What the owner creates from now on (each tenant's schema, every table of
-- every migration) the app may use: rows, not structure. The audit tables'
-- UPDATE and DELETE are taken back by audit/apps.py after every migration.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner"
    GRANT USAGE ON SCHEMAS TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner"
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner"
    GRANT USAGE, SELECT ON SEQUENCES TO :"app";
