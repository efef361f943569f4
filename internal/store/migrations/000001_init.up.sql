-- 000001_init: the audit_events store, its event-id register and partitions,
-- and notification_audit.
--
-- golang-migrate sends this file as one simple-protocol query, so PostgreSQL
-- runs it in one implicit transaction: it applies completely or not at all.

-- ---------------------------------------------------------------------------
-- audit_events: one row per stored audit event.
--
-- RANGE-partitioned by event_timestamp, one partition per calendar month (UTC),
-- named audit_events_pYYYYMM. Monthly rather than daily because:
--   * Queries without a time bound (correlation_id=..., the default page, the
--     `total` count) visit every partition. 24 months of retention are 24
--     partitions, not 730; each visited partition costs planning time, a
--     lock per partition and per index, and an index descent.
--   * `since=24h` does not need a partition per day: it touches one or two
--     partitions and walks the (event_timestamp, event_id) index inside them.
--   * Backfills and replays of old data (no lower bound on event_timestamp)
--     create one partition per month they touch, not one per day; a year of
--     backfill is 12 tables of 9 indexes each, not 365.
--   * 10M+ rows spread over months are a few million rows per partition, well
--     within what one B-tree per filter handles; retention drops a month at a
--     time, which is the granularity audit retention is stated in.
-- If one month ever grows past ~100M rows, a later migration can switch new
-- periods to daily partitions: audit_events_ensure_partition is the only
-- place that knows the period.
--
-- There is deliberately no DEFAULT partition: rows for a period without a
-- partition fail with SQLSTATE 23514 (class "failed", replayed from the DLQ)
-- instead of piling up in a default partition that would then block creating
-- the real one. Writers call audit_events_ensure_partition (Go:
-- Store.EnsurePartitions) for the months of a batch before copying it.
--
-- De-duplication. A primary key or unique index on a partitioned table must
-- contain the partition key, so PostgreSQL cannot enforce "event_id is unique"
-- across partitions: the same event_id with two timestamps would land in two
-- partitions. audit_event_ids (below, not partitioned) is the register of
-- stored event ids. A writer inserts a batch's ids there first with
-- ON CONFLICT DO NOTHING RETURNING event_id, and inserts into audit_events only
-- the rows whose id came back, in the same transaction. The register also
-- maps an event_id to its event_timestamp, so GET /events/{event_id} reads one
-- row there and then descends the primary key of exactly one partition.
-- ---------------------------------------------------------------------------
CREATE TABLE audit_events (
    event_id        uuid         NOT NULL,
    -- timestamptz keeps microseconds, the precision the API promises.
    event_timestamp timestamptz  NOT NULL,
    -- Derived, so it can never disagree with event_timestamp; writers leave
    -- it out of their column lists.
    event_date      date         GENERATED ALWAYS AS ((event_timestamp AT TIME ZONE 'UTC')::date) STORED,
    version         varchar(20)  NOT NULL,
    event_type      varchar(100) NOT NULL,
    -- The allowed categories are configurable in the application, so the
    -- database does not restrict them.
    event_category  varchar(100) NOT NULL,
    event_action    varchar(50)  NOT NULL,
    event_outcome   varchar(20)  NOT NULL CHECK (event_outcome IN ('success', 'failure', 'pending')),
    correlation_id  varchar(255) NOT NULL,
    actor_type      varchar(255),
    actor_id        varchar(255),
    resource_type   varchar(255),
    resource_id     varchar(255),
    parent_event_id uuid,
    namespace       varchar(255),
    cluster_name    varchar(255),
    severity        varchar(50),
    duration_ms     bigint       CHECK (duration_ms >= 0),
    event_data      jsonb        NOT NULL CHECK (jsonb_typeof(event_data) = 'object'),
    ingested_at     timestamptz  NOT NULL DEFAULT now(),
    -- Serves the default order and since/until: ORDER BY event_timestamp
    -- DESC, event_id DESC is a backward scan of this index (B-tree leaves are
    -- linked both ways, so backward is as cheap as forward). Also the lookup
    -- of one event by (event_timestamp, event_id) after audit_event_ids.
    PRIMARY KEY (event_timestamp, event_id)
) PARTITION BY RANGE (event_timestamp);

COMMENT ON TABLE audit_events IS
    'Audit events, append-only, one partition per UTC month (audit_events_pYYYYMM). '
    'event_id uniqueness is enforced by audit_event_ids, which writers insert into first.';

-- Secondary indexes: one per filter of GET /api/v1/audit/events, each
-- followed by the result order, so "filter = x ORDER BY event_timestamp DESC,
-- event_id DESC LIMIT n" reads n index entries and stops, with or without
-- since/until. Every index is maintained on every COPY, so the set is
-- limited to the API's filters; a combination of filters uses the most
-- selective of them and checks the rest on the rows it reads.
--
-- Columns that are often null (actor_id, resource_*, namespace, severity)
-- get partial indexes WHERE col IS NOT NULL: "col = $1" implies that
-- predicate, so the planner uses them, and rows without the value cost
-- nothing at COPY time.
--
-- Not indexed on purpose: event_action, actor_type, cluster_name,
-- parent_event_id, event_data (no API filter uses them).
CREATE INDEX audit_events_correlation_id_idx ON audit_events (correlation_id, event_timestamp DESC, event_id DESC);
CREATE INDEX audit_events_event_type_idx     ON audit_events (event_type, event_timestamp DESC, event_id DESC);
-- Category and outcome have few values, but some are rare (outcome=failure
-- is the query an auditor runs most); without these indexes such a query
-- and its total count would read every row of the time range.
CREATE INDEX audit_events_event_category_idx ON audit_events (event_category, event_timestamp DESC, event_id DESC);
CREATE INDEX audit_events_event_outcome_idx  ON audit_events (event_outcome, event_timestamp DESC, event_id DESC);
CREATE INDEX audit_events_severity_idx       ON audit_events (severity, event_timestamp DESC, event_id DESC) WHERE severity IS NOT NULL;
CREATE INDEX audit_events_actor_id_idx       ON audit_events (actor_id, event_timestamp DESC, event_id DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_namespace_idx      ON audit_events (namespace, event_timestamp DESC, event_id DESC) WHERE namespace IS NOT NULL;
-- resource_id first: it is the selective one and is filtered on alone
-- ("everything about this object"); with resource_type also given the scan
-- is in result order. resource_type alone (few values, each common) is
-- served by the primary key with a filter. (resource_type, resource_id)
-- would leave resource_id alone without an index before PostgreSQL 18's
-- skip scans.
CREATE INDEX audit_events_resource_idx       ON audit_events (resource_id, resource_type, event_timestamp DESC, event_id DESC) WHERE resource_id IS NOT NULL;

-- Append-only for the application. A row trigger on the partitioned table is
-- cloned to every partition (present and future), so UPDATE and DELETE are
-- refused whether they name audit_events or a partition; TRUNCATE of the
-- parent is refused too. COPY and INSERT are not affected. Retention drops
-- or detaches whole partitions (DROP TABLE audit_events_p202401), which
-- fires no row trigger. A deliberate correction (e.g. a legal erasure) is
-- done by the table owner with ALTER TABLE ... DISABLE TRIGGER inside a
-- transaction. The application role should in addition hold only INSERT and
-- SELECT on these tables.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Retention drops whole partitions; see the comment on audit_events.';
END;
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- ---------------------------------------------------------------------------
-- audit_event_ids: the register of stored event ids (see above). Not
-- partitioned, so its primary key is a real cross-partition uniqueness
-- guarantee. Retention that drops a partition of audit_events deletes the
-- ids of that period here in the same transaction
-- (DELETE FROM audit_event_ids WHERE event_timestamp >= lo AND event_timestamp < hi).
-- ---------------------------------------------------------------------------
CREATE TABLE audit_event_ids (
    event_id        uuid        PRIMARY KEY,
    event_timestamp timestamptz NOT NULL
);

COMMENT ON TABLE audit_event_ids IS
    'One row per event_id stored in audit_events, with its event_timestamp (the partition key). '
    'Writers INSERT ... ON CONFLICT DO NOTHING RETURNING here first; only returned ids go into audit_events.';

-- ---------------------------------------------------------------------------
-- Partitions.
--
-- audit_events_ensure_partition(ts) creates the monthly partition holding ts
-- unless it exists, and returns its name. Safe to call concurrently from any
-- number of writers: the common case (partition exists) takes no lock; the
-- creating path serialises on a transaction-level advisory lock and treats
-- "already exists" (a concurrent caller won) as success.
--
-- CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on
-- audit_events; lock_timeout keeps a caller from waiting behind a long query
-- (and everything queued behind it from waiting on the caller). The timeout
-- raises 55P03, which callers treat as transient and retry.
-- TimeZone is fixed to UTC so months are UTC months and the bounds render
-- with a +00 offset whatever the caller's session setting.
-- ---------------------------------------------------------------------------
CREATE FUNCTION audit_events_ensure_partition(ts timestamptz) RETURNS text
LANGUAGE plpgsql
SET TimeZone = 'UTC'
SET lock_timeout = '5s'
AS $$
DECLARE
    lo   timestamptz := date_trunc('month', ts);
    hi   timestamptz := lo + interval '1 month';
    name text        := 'audit_events_p' || to_char(lo, 'YYYYMM');
BEGIN
    IF ts IS NULL THEN
        RAISE EXCEPTION 'audit_events_ensure_partition: ts is null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF to_regclass(quote_ident(name)) IS NOT NULL THEN
        RETURN name;
    END IF;
    -- Key: the bytes "auditpar" as a bigint; only this function uses it.
    -- Serialising creators keeps two of them from colliding inside the
    -- catalogs (a unique violation on pg_type rather than a clean error).
    PERFORM pg_advisory_xact_lock(7022629598042022258);
    -- The name lookup above may come from a catalog cache that predates the
    -- lock (an advisory lock does not refresh it), so a partition that a
    -- concurrent caller has just committed can still look missing: treat
    -- "already exists" as success.
    BEGIN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    EXCEPTION WHEN duplicate_table THEN
        NULL;
    END;
    RETURN name;
END;
$$;

COMMENT ON FUNCTION audit_events_ensure_partition(timestamptz) IS
    'Creates the monthly partition of audit_events holding ts (audit_events_pYYYYMM, UTC months) if missing; returns its name.';

-- The previous month (late arrivals just after a month starts) through three
-- months ahead. Binaries keep extending this at run time
-- (Store.RunPartitionMaintenance), and writers create older months on demand.
SELECT audit_events_ensure_partition(now() + make_interval(months => m))
FROM generate_series(-1, 3) AS m;

-- ---------------------------------------------------------------------------
-- notification_audit: one row per notification delivery record.
--
-- ingest-api takes the id from notification_audit_id_seq before publishing
-- (Store.ReserveNotification), so the 201 response carries the id that will
-- be stored; records that direct producers publish without an id get one
-- from the same sequence through the column default.
-- ---------------------------------------------------------------------------
CREATE SEQUENCE notification_audit_id_seq AS bigint;

CREATE TABLE notification_audit (
    id               bigint        PRIMARY KEY DEFAULT nextval('notification_audit_id_seq'),
    notification_id  varchar(255)  NOT NULL UNIQUE,
    remediation_id   varchar(255)  NOT NULL,
    recipient        varchar(500)  NOT NULL,
    channel          varchar(20)   NOT NULL CHECK (channel IN ('email', 'slack', 'pagerduty', 'webhook')),
    message_summary  varchar(1000) NOT NULL,
    status           varchar(20)   NOT NULL CHECK (status IN ('sent', 'failed', 'pending')),
    sent_at          timestamptz   NOT NULL,
    delivery_status  varchar(255),
    error_message    varchar(1000),
    escalation_level smallint      CHECK (escalation_level BETWEEN 0 AND 5),
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now()
);

ALTER SEQUENCE notification_audit_id_seq OWNED BY notification_audit.id;

COMMENT ON TABLE notification_audit IS
    'Notification delivery audit. Writers insert with ON CONFLICT (notification_id) DO NOTHING: the first stored wins.';
