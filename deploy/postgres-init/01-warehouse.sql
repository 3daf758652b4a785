-- The warehouse database, beside Airflow's metadata database on the same PostgreSQL server.
--
-- The postgres image runs this file once, as the superuser (POSTGRES_USER, connected to
-- POSTGRES_DB), when it initialises an EMPTY data volume. On a server that already has its data,
-- run it by hand:
--   docker compose exec postgres psql -v ON_ERROR_STOP=1 -U airflow -d airflow \
--     -f /docker-entrypoint-initdb.d/01-warehouse.sql
--
-- The warehouse gets its own role and database: the role cannot reach Airflow's metadata, and
-- the tables are created by the warehouse's Alembic migrations (`review-ingest migrate`, run by
-- the airflow-init service), not here. The password comes from the container's environment
-- (WAREHOUSE_DB_PASSWORD, from .env), never from this file.
\set ON_ERROR_STOP on

\getenv warehouse_password WAREHOUSE_DB_PASSWORD
\if :{?warehouse_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'WAREHOUSE_DB_PASSWORD is not set in the postgres container'; END $$;
\endif

CREATE ROLE warehouse LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE warehouse OWNER warehouse;

-- Only the owner connects to each database (PUBLIC may connect to any database by default).
REVOKE ALL ON DATABASE warehouse FROM PUBLIC;
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
