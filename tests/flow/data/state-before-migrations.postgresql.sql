-- The same on PostgreSQL (DOPPEL_DB_URL=postgresql+psycopg://...), as pg_dump --inserts --no-owner wrote it.


SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.audit_events (
    source character varying(255) NOT NULL,
    id character varying(255) NOT NULL,
    type character varying(64) NOT NULL,
    correlation_id character varying(255) NOT NULL,
    "time" timestamp with time zone NOT NULL,
    subject character varying(255),
    data text NOT NULL,
    recorded_at double precision NOT NULL
);

CREATE TABLE public.backups (
    id character varying(64) NOT NULL,
    env character varying(64) NOT NULL,
    store character varying(255) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    size integer NOT NULL,
    sha256 character varying(64) NOT NULL,
    reason character varying(32),
    verified_at timestamp with time zone,
    verify_ok boolean,
    verify_detail text,
    deleted_at timestamp with time zone
);

CREATE TABLE public.dr_drills (
    id integer NOT NULL,
    production character varying(64) NOT NULL,
    backup_id character varying(64) NOT NULL,
    at timestamp with time zone NOT NULL,
    verified boolean NOT NULL,
    rpo_seconds double precision,
    rto_seconds double precision,
    detail text
);

CREATE SEQUENCE public.dr_drills_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.dr_drills_id_seq OWNED BY public.dr_drills.id;

CREATE TABLE public.dr_state (
    production character varying(64) NOT NULL,
    state character varying(16) NOT NULL,
    since timestamp with time zone NOT NULL,
    holder character varying(255),
    alarm_id character varying(255),
    alarm_at timestamp with time zone,
    last_trigger_at timestamp with time zone,
    backup_id character varying(64),
    dr_backup_id character varying(64),
    previous_dns text,
    dns_switched boolean,
    detail text
);

CREATE TABLE public.embedded_parked (
    row_id integer NOT NULL,
    queue character varying(255) NOT NULL,
    message_id character varying(255),
    routing_key character varying(255) NOT NULL,
    headers text NOT NULL,
    correlation_id character varying(255),
    "timestamp" integer,
    body bytea NOT NULL
);

CREATE SEQUENCE public.embedded_parked_row_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.embedded_parked_row_id_seq OWNED BY public.embedded_parked.row_id;

CREATE TABLE public.environment_transitions (
    id integer NOT NULL,
    env_id integer NOT NULL,
    from_state character varying(16),
    to_state character varying(16) NOT NULL,
    event_id character varying(255),
    reason text,
    at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.environment_transitions_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.environment_transitions_id_seq OWNED BY public.environment_transitions.id;

CREATE TABLE public.environments (
    id integer NOT NULL,
    name character varying(64) NOT NULL,
    request_id character varying(255) NOT NULL,
    production character varying(64) NOT NULL,
    state character varying(16) NOT NULL,
    owner character varying(128),
    data_version character varying(128),
    ttl_seconds integer,
    expires_at timestamp with time zone,
    endpoints text,
    reason text,
    correlation_id character varying(255),
    reply_to text,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.environments_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.environments_id_seq OWNED BY public.environments.id;

CREATE TABLE public.idempotency_ledger (
    function character varying(64) NOT NULL,
    key character varying(255) NOT NULL,
    status character varying(16) NOT NULL,
    owner character varying(64) NOT NULL,
    lease_until double precision NOT NULL,
    event_id character varying(255),
    event_type character varying(64),
    correlation_id character varying(255),
    result text,
    updated_at double precision NOT NULL,
    event text,
    takeovers integer DEFAULT 0 NOT NULL,
    redriven_at double precision
);

CREATE TABLE public.scheduler_expiries (
    env character varying(64) NOT NULL,
    at double precision NOT NULL,
    requested_at double precision NOT NULL,
    fired_at double precision
);

CREATE TABLE public.scheduler_lease (
    name character varying(64) NOT NULL,
    holder character varying(255) NOT NULL,
    generation integer NOT NULL,
    acquired_at double precision NOT NULL,
    renewed_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    released boolean NOT NULL
);

CREATE TABLE public.scheduler_outbox (
    event_id character varying(255) NOT NULL,
    type character varying(64) NOT NULL,
    body text NOT NULL,
    correlation_id character varying(255),
    created_at double precision NOT NULL,
    attempts integer NOT NULL,
    last_error text
);

CREATE TABLE public.scheduler_pauses (
    id integer NOT NULL,
    selector_key character varying(32) NOT NULL,
    selector text NOT NULL,
    reason text NOT NULL,
    paused_at double precision NOT NULL,
    lifted_at double precision
);

CREATE SEQUENCE public.scheduler_pauses_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.scheduler_pauses_id_seq OWNED BY public.scheduler_pauses.id;

ALTER TABLE ONLY public.dr_drills ALTER COLUMN id SET DEFAULT nextval('public.dr_drills_id_seq'::regclass);

ALTER TABLE ONLY public.embedded_parked ALTER COLUMN row_id SET DEFAULT nextval('public.embedded_parked_row_id_seq'::regclass);

ALTER TABLE ONLY public.environment_transitions ALTER COLUMN id SET DEFAULT nextval('public.environment_transitions_id_seq'::regclass);

ALTER TABLE ONLY public.environments ALTER COLUMN id SET DEFAULT nextval('public.environments_id_seq'::regclass);

ALTER TABLE ONLY public.scheduler_pauses ALTER COLUMN id SET DEFAULT nextval('public.scheduler_pauses_id_seq'::regclass);

INSERT INTO public.audit_events VALUES ('doppel/cli', 'd87375ed-23ff-4e47-97f8-6524669807f6', 'env.requested', 'd87375ed-23ff-4e47-97f8-6524669807f6', '2026-12-02 18:22:23.458698+00', NULL, '{"env": "perf-test", "production": "shop", "data_version": "latest", "ttl_seconds": 28800}', 1796235745.592371);
INSERT INTO public.audit_events VALUES ('doppel/snapshot', 'e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'snapshot.done', 'd87375ed-23ff-4e47-97f8-6524669807f6', '2026-12-02 18:22:25.931614+00', NULL, '{"env": "perf-test", "production": "shop", "request": "doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6", "snapshot": {"id": "snap-perf-test-41fe7e5d4728", "production": "shop", "env": "perf-test", "created": "2026-12-02T18:22:25.852029Z", "components": [{"kind": "files", "name": "app", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/app", "size": 161}, {"kind": "sqlite", "name": "main", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/data/shop.db", "size": 20480}, {"kind": "config", "name": "app", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/app.ini", "size": 291}, {"kind": "config", "name": "env", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/.env", "size": 243}, {"kind": "config", "name": "settings", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/settings.json", "size": 233}, {"kind": "crontab", "name": "crontab", "location": "/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/crontab", "size": 212}], "tags": {"doppel-env": "perf-test", "doppel-key": "doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6", "doppel-production": "shop"}, "status": "COMPLETE", "status_reason": ""}}', 1796235746.082806);
INSERT INTO public.audit_events VALUES ('doppel/clone', '67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'stack.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '2026-12-02 18:22:26.213436+00', NULL, '{"env": "perf-test", "request": "doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6", "stack": {"id": "stack-perf-test-41fe7e5d4728", "name": "perf-test", "env": "perf-test", "status": "CREATE_COMPLETE", "status_reason": "", "outputs": {"env": "perf-test", "root": "/tmp/state15-prev/state2/local/envs/perf-test/root", "base_url": "http://perf-test.localhost", "dns_name": "perf-test.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db"}, "tags": {"doppel-env": "perf-test", "doppel-key": "doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6", "doppel-production": "shop", "doppel-snapshot": "snap-perf-test-41fe7e5d4728"}}}', 1796235746.228282);
INSERT INTO public.audit_events VALUES ('doppel/configure', '516ec8d6-f6fb-5a74-a5ff-157f95539b95', 'env.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '2026-12-02 18:22:26.338078+00', NULL, '{"env": "perf-test", "request": "doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6", "endpoints": {"base_url": "http://perf-test.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db", "dns_name": "perf-test.localhost", "env": "perf-test", "root": "/tmp/state15-prev/state2/local/envs/perf-test/root"}, "expires_at": "2026-12-03T02:22:26.281771+00:00"}', 1796235746.382204);
INSERT INTO public.audit_events VALUES ('doppel/cli', '8486da1a-2ed1-4109-8b1f-bec11d83585d', 'env.requested', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '2026-12-02 18:22:31.694674+00', NULL, '{"env": "gone", "production": "shop", "data_version": "latest", "ttl_seconds": 28800}', 1796235753.683561);
INSERT INTO public.audit_events VALUES ('doppel/snapshot', '54a53352-a34e-5d5d-aea3-b86befbad02f', 'snapshot.done', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '2026-12-02 18:22:33.932977+00', NULL, '{"env": "gone", "production": "shop", "request": "doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d", "snapshot": {"id": "snap-gone-3c4cbcee2d2e", "production": "shop", "env": "gone", "created": "2026-12-02T18:22:33.873976Z", "components": [{"kind": "files", "name": "app", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/app", "size": 161}, {"kind": "sqlite", "name": "main", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/data/shop.db", "size": 20480}, {"kind": "config", "name": "app", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/app.ini", "size": 291}, {"kind": "config", "name": "env", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/.env", "size": 243}, {"kind": "config", "name": "settings", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/settings.json", "size": 233}, {"kind": "crontab", "name": "crontab", "location": "/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/crontab", "size": 212}], "tags": {"doppel-env": "gone", "doppel-key": "doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d", "doppel-production": "shop"}, "status": "COMPLETE", "status_reason": ""}}', 1796235753.957872);
INSERT INTO public.audit_events VALUES ('doppel/clone', '070a5033-f2ef-5aff-8b0d-2412563f5926', 'stack.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '2026-12-02 18:22:34.085255+00', NULL, '{"env": "gone", "request": "doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d", "stack": {"id": "stack-gone-3c4cbcee2d2e", "name": "gone", "env": "gone", "status": "CREATE_COMPLETE", "status_reason": "", "outputs": {"env": "gone", "root": "/tmp/state15-prev/state2/local/envs/gone/root", "base_url": "http://gone.localhost", "dns_name": "gone.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db"}, "tags": {"doppel-env": "gone", "doppel-key": "doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d", "doppel-production": "shop", "doppel-snapshot": "snap-gone-3c4cbcee2d2e"}}}', 1796235754.13306);
INSERT INTO public.audit_events VALUES ('doppel/configure', '01f7ca08-97db-5945-abbf-5ca011c98b65', 'env.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '2026-12-02 18:22:34.400516+00', NULL, '{"env": "gone", "request": "doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d", "endpoints": {"base_url": "http://gone.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db", "dns_name": "gone.localhost", "env": "gone", "root": "/tmp/state15-prev/state2/local/envs/gone/root"}, "expires_at": "2026-12-03T02:22:34.306429+00:00"}', 1796235754.444529);
INSERT INTO public.audit_events VALUES ('doppel/cli', 'b419d47c-87d6-46a9-badc-4718d6905258', 'env.expired', 'b419d47c-87d6-46a9-badc-4718d6905258', '2026-12-02 18:22:40.476595+00', NULL, '{"env": "gone", "reason": "manual"}', 1796235762.876292);
INSERT INTO public.audit_events VALUES ('doppel/backup', 'b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'backup.done', 'b419d47c-87d6-46a9-badc-4718d6905258', '2026-12-02 18:22:43.260862+00', NULL, '{"env": "gone", "backup_id": "20261202T182240Z-c9e261", "reason": "expiry", "size": 5842, "sha256": "9a863e05a78029cfd8d122dd8a96af69ab040f592b20c1928ef03054e0066ac1"}', 1796235763.320933);
INSERT INTO public.audit_events VALUES ('doppel/prune', 'd63aeb84-b5b3-5518-b515-3ab9794a1bd7', 'backup.pruned', 'b419d47c-87d6-46a9-badc-4718d6905258', '2026-12-02 18:22:43.416242+00', NULL, '{"env": "gone", "removed": [], "kept": 1}', 1796235763.504862);
INSERT INTO public.audit_events VALUES ('doppel/teardown', 'a19540a7-ce84-53a5-af37-dbccbf881705', 'env.deleted', 'b419d47c-87d6-46a9-badc-4718d6905258', '2026-12-02 18:22:43.688973+00', NULL, '{"env": "gone", "backup_id": "20261202T182240Z-c9e261"}', 1796235763.710241);

INSERT INTO public.backups VALUES ('20261202T182240Z-c9e261', 'gone', 'local:/tmp/state15-prev/state2/local/objects', '2026-12-02 18:22:43.112698+00', 5842, '9a863e05a78029cfd8d122dd8a96af69ab040f592b20c1928ef03054e0066ac1', 'expiry', NULL, NULL, NULL, NULL);

INSERT INTO public.environment_transitions VALUES (1, 1, NULL, 'requested', 'doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6', NULL, '2026-12-02 18:22:25.693685+00');
INSERT INTO public.environment_transitions VALUES (2, 1, 'requested', 'snapshotting', 'd87375ed-23ff-4e47-97f8-6524669807f6', NULL, '2026-12-02 18:22:25.764276+00');
INSERT INTO public.environment_transitions VALUES (3, 1, 'snapshotting', 'cloning', 'e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', NULL, '2026-12-02 18:22:26.172178+00');
INSERT INTO public.environment_transitions VALUES (4, 1, 'cloning', 'configuring', '67aec868-566f-5c9c-bee4-f0ca490dcdcc', NULL, '2026-12-02 18:22:26.225357+00');
INSERT INTO public.environment_transitions VALUES (5, 1, 'configuring', 'ready', '67aec868-566f-5c9c-bee4-f0ca490dcdcc', NULL, '2026-12-02 18:22:26.283539+00');
INSERT INTO public.environment_transitions VALUES (6, 2, NULL, 'requested', 'doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d', NULL, '2026-12-02 18:22:33.772931+00');
INSERT INTO public.environment_transitions VALUES (7, 2, 'requested', 'snapshotting', '8486da1a-2ed1-4109-8b1f-bec11d83585d', NULL, '2026-12-02 18:22:33.841692+00');
INSERT INTO public.environment_transitions VALUES (8, 2, 'snapshotting', 'cloning', '54a53352-a34e-5d5d-aea3-b86befbad02f', NULL, '2026-12-02 18:22:33.981002+00');
INSERT INTO public.environment_transitions VALUES (9, 2, 'cloning', 'configuring', '070a5033-f2ef-5aff-8b0d-2412563f5926', NULL, '2026-12-02 18:22:34.168247+00');
INSERT INTO public.environment_transitions VALUES (10, 2, 'configuring', 'ready', '070a5033-f2ef-5aff-8b0d-2412563f5926', NULL, '2026-12-02 18:22:34.32394+00');
INSERT INTO public.environment_transitions VALUES (11, 2, 'ready', 'expiring', 'b419d47c-87d6-46a9-badc-4718d6905258', 'expired (manual); backing up', '2026-12-02 18:22:43.028768+00');
INSERT INTO public.environment_transitions VALUES (12, 2, 'expiring', 'deleted', 'b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'backed up as 20261202T182240Z-c9e261', '2026-12-02 18:22:43.632098+00');

INSERT INTO public.environments VALUES (1, 'perf-test', 'doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6', 'shop', 'ready', NULL, 'latest', 28800, '2026-12-03 02:22:26.281771+00', '{"base_url": "http://perf-test.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db", "dns_name": "perf-test.localhost", "env": "perf-test", "root": "/tmp/state15-prev/state2/local/envs/perf-test/root"}', NULL, 'd87375ed-23ff-4e47-97f8-6524669807f6', NULL, '2026-12-02 18:22:25.693685+00', '2026-12-02 18:22:26.283539+00');
INSERT INTO public.environments VALUES (2, 'gone', 'doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d', 'shop', 'deleted', NULL, 'latest', 28800, '2026-12-03 02:22:34.306429+00', '{"base_url": "http://gone.localhost", "db_main_path": "/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db", "db_main_url": "sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db", "dns_name": "gone.localhost", "env": "gone", "root": "/tmp/state15-prev/state2/local/envs/gone/root"}', 'backed up as 20261202T182240Z-c9e261', '8486da1a-2ed1-4109-8b1f-bec11d83585d', NULL, '2026-12-02 18:22:33.772931+00', '2026-12-02 18:22:43.632098+00');

INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/cli:d87375ed-23ff-4e47-97f8-6524669807f6', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.1', 1796235775.4977455, 'd87375ed-23ff-4e47-97f8-6524669807f6', 'env.requested', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235745.6212106, '{"specversion":"1.0","id":"d87375ed-23ff-4e47-97f8-6524669807f6","source":"doppel/cli","type":"env.requested","time":"2026-12-02T18:22:23.458698Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","production":"shop","data_version":"latest","ttl_seconds":28800}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('snapshot', 'doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.2', 1796235775.5111792, 'd87375ed-23ff-4e47-97f8-6524669807f6', 'env.requested', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": [["snapshot.done", "e61627ec-bd4a-5dc3-bc34-02dc990dbdbb"]]}', 1796235745.9322455, '{"specversion":"1.0","id":"d87375ed-23ff-4e47-97f8-6524669807f6","source":"doppel/cli","type":"env.requested","time":"2026-12-02T18:22:23.458698Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","production":"shop","data_version":"latest","ttl_seconds":28800}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/snapshot:e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.5', 1796235775.9417937, 'e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'snapshot.done', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.1485324, '{"specversion":"1.0","id":"e61627ec-bd4a-5dc3-bc34-02dc990dbdbb","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:25.931614Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","production":"shop","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","snapshot":{"id":"snap-perf-test-41fe7e5d4728","production":"shop","env":"perf-test","created":"2026-12-02T18:22:25.852029Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/crontab","size":212}],"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/clone:67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.8', 1796235776.2149618, '67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'stack.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.2244174, '{"specversion":"1.0","id":"67aec868-566f-5c9c-bee4-f0ca490dcdcc","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:26.213436Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","stack":{"id":"stack-perf-test-41fe7e5d4728","name":"perf-test","env":"perf-test","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"perf-test","root":"/tmp/state15-prev/state2/local/envs/perf-test/root","base_url":"http://perf-test.localhost","dns_name":"perf-test.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db"},"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop","doppel-snapshot":"snap-perf-test-41fe7e5d4728"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('configure', 'doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.7', 1796235776.2147691, '67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'stack.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": [["env.ready", "516ec8d6-f6fb-5a74-a5ff-157f95539b95"]]}', 1796235746.3391678, '{"specversion":"1.0","id":"67aec868-566f-5c9c-bee4-f0ca490dcdcc","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:26.213436Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","stack":{"id":"stack-perf-test-41fe7e5d4728","name":"perf-test","env":"perf-test","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"perf-test","root":"/tmp/state15-prev/state2/local/envs/perf-test/root","base_url":"http://perf-test.localhost","dns_name":"perf-test.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db"},"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop","doppel-snapshot":"snap-perf-test-41fe7e5d4728"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/configure:516ec8d6-f6fb-5a74-a5ff-157f95539b95', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.10', 1796235776.340044, '516ec8d6-f6fb-5a74-a5ff-157f95539b95', 'env.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.4072185, '{"specversion":"1.0","id":"516ec8d6-f6fb-5a74-a5ff-157f95539b95","source":"doppel/configure","type":"env.ready","time":"2026-12-02T18:22:26.338078Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","endpoints":{"base_url":"http://perf-test.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","dns_name":"perf-test.localhost","env":"perf-test","root":"/tmp/state15-prev/state2/local/envs/perf-test/root"},"expires_at":"2026-12-03T02:22:26.281771+00:00"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/snapshot:e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.3', 1796235775.940973, 'e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'snapshot.done', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.1068153, '{"specversion":"1.0","id":"e61627ec-bd4a-5dc3-bc34-02dc990dbdbb","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:25.931614Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","production":"shop","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","snapshot":{"id":"snap-perf-test-41fe7e5d4728","production":"shop","env":"perf-test","created":"2026-12-02T18:22:25.852029Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/crontab","size":212}],"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('clone', 'doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.4', 1796235775.941429, 'e61627ec-bd4a-5dc3-bc34-02dc990dbdbb', 'snapshot.done', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": [["stack.ready", "67aec868-566f-5c9c-bee4-f0ca490dcdcc"]]}', 1796235746.2139106, '{"specversion":"1.0","id":"e61627ec-bd4a-5dc3-bc34-02dc990dbdbb","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:25.931614Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","production":"shop","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","snapshot":{"id":"snap-perf-test-41fe7e5d4728","production":"shop","env":"perf-test","created":"2026-12-02T18:22:25.852029Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-perf-test-41fe7e5d4728/root/crontab","size":212}],"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/clone:67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.6', 1796235776.2145412, '67aec868-566f-5c9c-bee4-f0ca490dcdcc', 'stack.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.2473996, '{"specversion":"1.0","id":"67aec868-566f-5c9c-bee4-f0ca490dcdcc","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:26.213436Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","stack":{"id":"stack-perf-test-41fe7e5d4728","name":"perf-test","env":"perf-test","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"perf-test","root":"/tmp/state15-prev/state2/local/envs/perf-test/root","base_url":"http://perf-test.localhost","dns_name":"perf-test.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db"},"tags":{"doppel-env":"perf-test","doppel-key":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","doppel-production":"shop","doppel-snapshot":"snap-perf-test-41fe7e5d4728"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/configure:516ec8d6-f6fb-5a74-a5ff-157f95539b95', 'done', '4c876532e7cb48bd8c21c2701fedcdb6.9', 1796235776.3398104, '516ec8d6-f6fb-5a74-a5ff-157f95539b95', 'env.ready', 'd87375ed-23ff-4e47-97f8-6524669807f6', '{"emitted": []}', 1796235746.3858643, '{"specversion":"1.0","id":"516ec8d6-f6fb-5a74-a5ff-157f95539b95","source":"doppel/configure","type":"env.ready","time":"2026-12-02T18:22:26.338078Z","datacontenttype":"application/json","correlationid":"d87375ed-23ff-4e47-97f8-6524669807f6","data":{"env":"perf-test","request":"doppel/cli/d87375ed-23ff-4e47-97f8-6524669807f6","endpoints":{"base_url":"http://perf-test.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/perf-test/root/data/shop.db","dns_name":"perf-test.localhost","env":"perf-test","root":"/tmp/state15-prev/state2/local/envs/perf-test/root"},"expires_at":"2026-12-03T02:22:26.281771+00:00"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/cli:8486da1a-2ed1-4109-8b1f-bec11d83585d', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.1', 1796235783.6032689, '8486da1a-2ed1-4109-8b1f-bec11d83585d', 'env.requested', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235753.721718, '{"specversion":"1.0","id":"8486da1a-2ed1-4109-8b1f-bec11d83585d","source":"doppel/cli","type":"env.requested","time":"2026-12-02T18:22:31.694674Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","production":"shop","data_version":"latest","ttl_seconds":28800}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('snapshot', 'doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.2', 1796235783.6137695, '8486da1a-2ed1-4109-8b1f-bec11d83585d', 'env.requested', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": [["snapshot.done", "54a53352-a34e-5d5d-aea3-b86befbad02f"]]}', 1796235753.936348, '{"specversion":"1.0","id":"8486da1a-2ed1-4109-8b1f-bec11d83585d","source":"doppel/cli","type":"env.requested","time":"2026-12-02T18:22:31.694674Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","production":"shop","data_version":"latest","ttl_seconds":28800}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('clone', 'doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.4', 1796235783.9375784, '54a53352-a34e-5d5d-aea3-b86befbad02f', 'snapshot.done', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": [["stack.ready", "070a5033-f2ef-5aff-8b0d-2412563f5926"]]}', 1796235754.0872922, '{"specversion":"1.0","id":"54a53352-a34e-5d5d-aea3-b86befbad02f","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:33.932977Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","production":"shop","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","snapshot":{"id":"snap-gone-3c4cbcee2d2e","production":"shop","env":"gone","created":"2026-12-02T18:22:33.873976Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/crontab","size":212}],"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/clone:070a5033-f2ef-5aff-8b0d-2412563f5926', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.8', 1796235784.1014824, '070a5033-f2ef-5aff-8b0d-2412563f5926', 'stack.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235754.1679094, '{"specversion":"1.0","id":"070a5033-f2ef-5aff-8b0d-2412563f5926","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:34.085255Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","stack":{"id":"stack-gone-3c4cbcee2d2e","name":"gone","env":"gone","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"gone","root":"/tmp/state15-prev/state2/local/envs/gone/root","base_url":"http://gone.localhost","dns_name":"gone.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db"},"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop","doppel-snapshot":"snap-gone-3c4cbcee2d2e"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('configure', 'doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.7', 1796235784.1011047, '070a5033-f2ef-5aff-8b0d-2412563f5926', 'stack.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": [["env.ready", "01f7ca08-97db-5945-abbf-5ca011c98b65"]]}', 1796235754.4008768, '{"specversion":"1.0","id":"070a5033-f2ef-5aff-8b0d-2412563f5926","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:34.085255Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","stack":{"id":"stack-gone-3c4cbcee2d2e","name":"gone","env":"gone","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"gone","root":"/tmp/state15-prev/state2/local/envs/gone/root","base_url":"http://gone.localhost","dns_name":"gone.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db"},"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop","doppel-snapshot":"snap-gone-3c4cbcee2d2e"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/snapshot:54a53352-a34e-5d5d-aea3-b86befbad02f', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.3', 1796235783.9372349, '54a53352-a34e-5d5d-aea3-b86befbad02f', 'snapshot.done', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235753.9752145, '{"specversion":"1.0","id":"54a53352-a34e-5d5d-aea3-b86befbad02f","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:33.932977Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","production":"shop","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","snapshot":{"id":"snap-gone-3c4cbcee2d2e","production":"shop","env":"gone","created":"2026-12-02T18:22:33.873976Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/crontab","size":212}],"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/snapshot:54a53352-a34e-5d5d-aea3-b86befbad02f', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.5', 1796235783.9382443, '54a53352-a34e-5d5d-aea3-b86befbad02f', 'snapshot.done', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235754.0087547, '{"specversion":"1.0","id":"54a53352-a34e-5d5d-aea3-b86befbad02f","source":"doppel/snapshot","type":"snapshot.done","time":"2026-12-02T18:22:33.932977Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","production":"shop","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","snapshot":{"id":"snap-gone-3c4cbcee2d2e","production":"shop","env":"gone","created":"2026-12-02T18:22:33.873976Z","components":[{"kind":"files","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/app","size":161},{"kind":"sqlite","name":"main","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/data/shop.db","size":20480},{"kind":"config","name":"app","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/app.ini","size":291},{"kind":"config","name":"env","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/.env","size":243},{"kind":"config","name":"settings","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/config/settings.json","size":233},{"kind":"crontab","name":"crontab","location":"/tmp/state15-prev/state2/local/snapshots/snap-gone-3c4cbcee2d2e/root/crontab","size":212}],"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop"},"status":"COMPLETE","status_reason":""}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/clone:070a5033-f2ef-5aff-8b0d-2412563f5926', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.6', 1796235784.10059, '070a5033-f2ef-5aff-8b0d-2412563f5926', 'stack.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235754.168539, '{"specversion":"1.0","id":"070a5033-f2ef-5aff-8b0d-2412563f5926","source":"doppel/clone","type":"stack.ready","time":"2026-12-02T18:22:34.085255Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","stack":{"id":"stack-gone-3c4cbcee2d2e","name":"gone","env":"gone","status":"CREATE_COMPLETE","status_reason":"","outputs":{"env":"gone","root":"/tmp/state15-prev/state2/local/envs/gone/root","base_url":"http://gone.localhost","dns_name":"gone.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db"},"tags":{"doppel-env":"gone","doppel-key":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","doppel-production":"shop","doppel-snapshot":"snap-gone-3c4cbcee2d2e"}}}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/teardown:a19540a7-ce84-53a5-af37-dbccbf881705', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.8', 1796235793.691789, 'a19540a7-ce84-53a5-af37-dbccbf881705', 'env.deleted', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": []}', 1796235763.7097719, '{"specversion":"1.0","id":"a19540a7-ce84-53a5-af37-dbccbf881705","source":"doppel/teardown","type":"env.deleted","time":"2026-12-02T18:22:43.688973Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","backup_id":"20261202T182240Z-c9e261"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('notify', 'doppel/configure:01f7ca08-97db-5945-abbf-5ca011c98b65', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.10', 1796235784.4017985, '01f7ca08-97db-5945-abbf-5ca011c98b65', 'env.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235754.4601984, '{"specversion":"1.0","id":"01f7ca08-97db-5945-abbf-5ca011c98b65","source":"doppel/configure","type":"env.ready","time":"2026-12-02T18:22:34.400516Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","endpoints":{"base_url":"http://gone.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","dns_name":"gone.localhost","env":"gone","root":"/tmp/state15-prev/state2/local/envs/gone/root"},"expires_at":"2026-12-03T02:22:34.306429+00:00"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/configure:01f7ca08-97db-5945-abbf-5ca011c98b65', 'done', 'c4478eb625b24ae6a0cba92a18beb24a.9', 1796235784.4014964, '01f7ca08-97db-5945-abbf-5ca011c98b65', 'env.ready', '8486da1a-2ed1-4109-8b1f-bec11d83585d', '{"emitted": []}', 1796235754.4746377, '{"specversion":"1.0","id":"01f7ca08-97db-5945-abbf-5ca011c98b65","source":"doppel/configure","type":"env.ready","time":"2026-12-02T18:22:34.400516Z","datacontenttype":"application/json","correlationid":"8486da1a-2ed1-4109-8b1f-bec11d83585d","data":{"env":"gone","request":"doppel/cli/8486da1a-2ed1-4109-8b1f-bec11d83585d","endpoints":{"base_url":"http://gone.localhost","db_main_path":"/tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","db_main_url":"sqlite:////tmp/state15-prev/state2/local/envs/gone/root/data/shop.db","dns_name":"gone.localhost","env":"gone","root":"/tmp/state15-prev/state2/local/envs/gone/root"},"expires_at":"2026-12-03T02:22:34.306429+00:00"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/cli:b419d47c-87d6-46a9-badc-4718d6905258', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.1', 1796235792.7613604, 'b419d47c-87d6-46a9-badc-4718d6905258', 'env.expired', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": []}', 1796235762.924258, '{"specversion":"1.0","id":"b419d47c-87d6-46a9-badc-4718d6905258","source":"doppel/cli","type":"env.expired","time":"2026-12-02T18:22:40.476595Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","reason":"manual"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('backup', 'doppel/cli:b419d47c-87d6-46a9-badc-4718d6905258', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.2', 1796235792.8165922, 'b419d47c-87d6-46a9-badc-4718d6905258', 'env.expired', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": [["backup.done", "b3f3ae20-1c7d-529d-9abd-8a41f248d587"]]}', 1796235763.264126, '{"specversion":"1.0","id":"b419d47c-87d6-46a9-badc-4718d6905258","source":"doppel/cli","type":"env.expired","time":"2026-12-02T18:22:40.476595Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","reason":"manual"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/backup:b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.3', 1796235793.2693138, 'b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'backup.done', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": []}', 1796235763.3457408, '{"specversion":"1.0","id":"b3f3ae20-1c7d-529d-9abd-8a41f248d587","source":"doppel/backup","type":"backup.done","time":"2026-12-02T18:22:43.260862Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","backup_id":"20261202T182240Z-c9e261","reason":"expiry","size":5842,"sha256":"9a863e05a78029cfd8d122dd8a96af69ab040f592b20c1928ef03054e0066ac1"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('prune', 'gone:20261202T182240Z-c9e261', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.5', 1796235793.273324, 'b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'backup.done', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": [["backup.pruned", "d63aeb84-b5b3-5518-b515-3ab9794a1bd7"]]}', 1796235763.4166365, '{"specversion":"1.0","id":"b3f3ae20-1c7d-529d-9abd-8a41f248d587","source":"doppel/backup","type":"backup.done","time":"2026-12-02T18:22:43.260862Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","backup_id":"20261202T182240Z-c9e261","reason":"expiry","size":5842,"sha256":"9a863e05a78029cfd8d122dd8a96af69ab040f592b20c1928ef03054e0066ac1"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/prune:d63aeb84-b5b3-5518-b515-3ab9794a1bd7', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.6', 1796235793.418773, 'd63aeb84-b5b3-5518-b515-3ab9794a1bd7', 'backup.pruned', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": []}', 1796235763.5070138, '{"specversion":"1.0","id":"d63aeb84-b5b3-5518-b515-3ab9794a1bd7","source":"doppel/prune","type":"backup.pruned","time":"2026-12-02T18:22:43.416242Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","removed":[],"kept":1}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('teardown', 'gone:20261202T182240Z-c9e261', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.4', 1796235793.2728329, 'b3f3ae20-1c7d-529d-9abd-8a41f248d587', 'backup.done', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": [["env.deleted", "a19540a7-ce84-53a5-af37-dbccbf881705"]]}', 1796235763.689444, '{"specversion":"1.0","id":"b3f3ae20-1c7d-529d-9abd-8a41f248d587","source":"doppel/backup","type":"backup.done","time":"2026-12-02T18:22:43.260862Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","backup_id":"20261202T182240Z-c9e261","reason":"expiry","size":5842,"sha256":"9a863e05a78029cfd8d122dd8a96af69ab040f592b20c1928ef03054e0066ac1"}}', 0, NULL);
INSERT INTO public.idempotency_ledger VALUES ('audit', 'doppel/teardown:a19540a7-ce84-53a5-af37-dbccbf881705', 'done', '6a232eec0eeb4106bd7c0bcba3479f35.7', 1796235793.6914818, 'a19540a7-ce84-53a5-af37-dbccbf881705', 'env.deleted', 'b419d47c-87d6-46a9-badc-4718d6905258', '{"emitted": []}', 1796235763.7284877, '{"specversion":"1.0","id":"a19540a7-ce84-53a5-af37-dbccbf881705","source":"doppel/teardown","type":"env.deleted","time":"2026-12-02T18:22:43.688973Z","datacontenttype":"application/json","correlationid":"b419d47c-87d6-46a9-badc-4718d6905258","data":{"env":"gone","backup_id":"20261202T182240Z-c9e261"}}', 0, NULL);

INSERT INTO public.scheduler_expiries VALUES ('perf-test', 1796264546.281771, 1796235746.3047054, NULL);

SELECT pg_catalog.setval('public.dr_drills_id_seq', 1, false);

SELECT pg_catalog.setval('public.embedded_parked_row_id_seq', 1, false);

SELECT pg_catalog.setval('public.environment_transitions_id_seq', 12, true);

SELECT pg_catalog.setval('public.environments_id_seq', 2, true);

SELECT pg_catalog.setval('public.scheduler_pauses_id_seq', 1, false);

ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_pkey PRIMARY KEY (source, id);

ALTER TABLE ONLY public.backups
    ADD CONSTRAINT backups_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.dr_drills
    ADD CONSTRAINT dr_drills_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.dr_state
    ADD CONSTRAINT dr_state_pkey PRIMARY KEY (production);

ALTER TABLE ONLY public.embedded_parked
    ADD CONSTRAINT embedded_parked_pkey PRIMARY KEY (row_id);

ALTER TABLE ONLY public.environment_transitions
    ADD CONSTRAINT environment_transitions_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.environments
    ADD CONSTRAINT environments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.environments
    ADD CONSTRAINT environments_request_id_key UNIQUE (request_id);

ALTER TABLE ONLY public.idempotency_ledger
    ADD CONSTRAINT idempotency_ledger_pkey PRIMARY KEY (function, key);

ALTER TABLE ONLY public.scheduler_expiries
    ADD CONSTRAINT scheduler_expiries_pkey PRIMARY KEY (env);

ALTER TABLE ONLY public.scheduler_lease
    ADD CONSTRAINT scheduler_lease_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.scheduler_outbox
    ADD CONSTRAINT scheduler_outbox_pkey PRIMARY KEY (event_id);

ALTER TABLE ONLY public.scheduler_pauses
    ADD CONSTRAINT scheduler_pauses_pkey PRIMARY KEY (id);

CREATE INDEX ix_audit_events_correlation_id ON public.audit_events USING btree (correlation_id);

CREATE INDEX ix_audit_events_type ON public.audit_events USING btree (type);

CREATE INDEX ix_backups_env ON public.backups USING btree (env);

CREATE INDEX ix_dr_drills_production ON public.dr_drills USING btree (production);

CREATE INDEX ix_embedded_parked_queue ON public.embedded_parked USING btree (queue);

CREATE INDEX ix_environment_transitions_env_id ON public.environment_transitions USING btree (env_id);

CREATE INDEX ix_environments_name ON public.environments USING btree (name);

CREATE INDEX ix_idempotency_ledger_running ON public.idempotency_ledger USING btree (lease_until) WHERE ((status)::text = 'running'::text);

CREATE INDEX ix_scheduler_pauses_selector_key ON public.scheduler_pauses USING btree (selector_key);


