-- 000007_lifecycle: the seed system's newer fields, legal holds, retention
-- by partition, and append-only rules beyond audit_events (SPEC 10).
--
-- Everything here works on a populated database without a long lock:
-- ADD COLUMN without a volatile default only changes the catalog, and the
-- new CHECK constraints are added NOT VALID (existing rows are known to
-- satisfy them, see each), so no partition is scanned.

-- ---------------------------------------------------------------------------
-- The newer seed fields (internal/audit's field table).
--
-- actor_ip is inet, so an address is stored once in one form whatever text
-- the client sent (the API hands IPv4-mapped IPv6 addresses in as IPv4).
-- is_sensitive is NOT NULL DEFAULT false, the SPEC's default: rows stored
-- before it existed read false (a constant default is kept in the catalog,
-- not written into them), and the writer's COPY always says.
-- retention_days is checked here as well as by the API: the retention
-- function trusts it to decide what to drop. NOT VALID because every
-- existing row holds NULL.
-- ---------------------------------------------------------------------------
ALTER TABLE audit_events
    ADD COLUMN actor_ip       inet,
    ADD COLUMN cluster_id     varchar(255),
    ADD COLUMN error_code     varchar(100),
    ADD COLUMN error_message  varchar(2000),
    ADD COLUMN is_sensitive   boolean NOT NULL DEFAULT false,
    ADD COLUMN retention_days integer;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_retention_days_check
    CHECK (retention_days BETWEEN 1 AND 2555) NOT VALID;

-- Notifications may go to Microsoft Teams too. NOT VALID: every stored row
-- passed the narrower check this one replaces.
ALTER TABLE notification_audit DROP CONSTRAINT notification_audit_channel_check;
ALTER TABLE notification_audit ADD CONSTRAINT notification_audit_channel_check
    CHECK (channel IN ('email', 'slack', 'pagerduty', 'webhook', 'teams')) NOT VALID;

-- ---------------------------------------------------------------------------
-- Append-only beyond audit_events.
--
-- auditstream_append_only() refuses the operation for the table it fires
-- on, for every role including the owner (as audit_events_append_only does
-- for audit_events): a deliberate correction is the owner disabling the
-- trigger inside a transaction, which leaves its own trace in the logs.
-- ---------------------------------------------------------------------------
CREATE FUNCTION auditstream_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

-- A notification record's identity is what the API answered with (id,
-- created_at), what it is known by (notification_id) and who sent it
-- (submitted_by): none of them may change after the fact. Its delivery
-- columns may (a later status update is legitimate). The trigger names the
-- columns, so an UPDATE that leaves them out does not even run it.
CREATE FUNCTION notification_audit_identity_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.notification_id, NEW.created_at, NEW.submitted_by)
        IS DISTINCT FROM (OLD.id, OLD.notification_id, OLD.created_at, OLD.submitted_by) THEN
        RAISE EXCEPTION 'notification_audit: id, notification_id, created_at and submitted_by cannot change'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER notification_audit_identity
    BEFORE UPDATE OF id, notification_id, created_at, submitted_by ON notification_audit
    FOR EACH ROW EXECUTE FUNCTION notification_audit_identity_fixed();

-- ---------------------------------------------------------------------------
-- legal_holds: every hold ever placed, with its release (SPEC 10).
--
-- One row per placement; releasing fills the release columns of that row,
-- once. A hold is in force while released_at is null, and at most one per
-- correlation_id is (the partial unique index: two concurrent placements
-- cannot both succeed). The trigger keeps the history: a row is never
-- deleted, its placement never rewritten, a release never undone. A hold
-- covers every event of its correlation_id, stored before or after it was
-- placed: the retention function asks this table, not the events.
-- ---------------------------------------------------------------------------
CREATE TABLE legal_holds (
    id              bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    correlation_id  varchar(255)  NOT NULL,
    reason          varchar(1000) NOT NULL,
    placed_by       text          NOT NULL,
    placed_at       timestamptz   NOT NULL DEFAULT now(),
    -- Events of the correlation_id stored when the hold was placed.
    events_affected bigint        NOT NULL,
    released_by     text,
    released_at     timestamptz,
    release_reason  varchar(1000),
    events_released bigint,
    CONSTRAINT legal_holds_release_complete CHECK (
        (released_at IS NULL AND released_by IS NULL AND release_reason IS NULL AND events_released IS NULL) OR
        (released_at IS NOT NULL AND released_by IS NOT NULL AND release_reason IS NOT NULL AND events_released IS NOT NULL))
);

CREATE UNIQUE INDEX legal_holds_in_force_idx ON legal_holds (correlation_id) WHERE released_at IS NULL;

COMMENT ON TABLE legal_holds IS
    'Legal holds and their history: one row per placement, released once by filling released_*; never deleted.';

CREATE FUNCTION legal_holds_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.released_at IS NULL AND NEW.released_at IS NOT NULL
            AND (NEW.id, NEW.correlation_id, NEW.reason, NEW.placed_by, NEW.placed_at, NEW.events_affected)
                IS NOT DISTINCT FROM (OLD.id, OLD.correlation_id, OLD.reason, OLD.placed_by, OLD.placed_at, OLD.events_affected) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'legal_holds keeps the history of every hold: % is not allowed (a hold is only ever released, once)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER legal_holds_history
    BEFORE UPDATE OR DELETE ON legal_holds
    FOR EACH ROW EXECUTE FUNCTION legal_holds_history();

CREATE TRIGGER legal_holds_no_truncate
    BEFORE TRUNCATE ON legal_holds
    FOR EACH STATEMENT EXECUTE FUNCTION auditstream_append_only();

-- ---------------------------------------------------------------------------
-- Retention bookkeeping.
--
-- retention_drops records each partition the retention function dropped:
-- its period, how many events it held, the RETENTION_DAYS that applied,
-- and the event_id of the audit event (category auditstream) the writer
-- publishes about it, so that an event lost before Kafka took it can be
-- published again (Store.UnrecordedDrops).
--
-- retention_dropped_chains says, per dropped partition and correlation_id,
-- how many of the chain's events went and which: their time span and
-- their chain_seq range. Retention drops by time and chains are numbered
-- in storage order, so what goes is not always a chain's head: it may be
-- any events of it. A verifier explains each missing chain_seq with these
-- rows (truncated_by_retention) instead of reporting tampering.
--
-- Both are append-only: they are the evidence that a removal was the
-- retention policy's.
-- ---------------------------------------------------------------------------
CREATE TABLE retention_drops (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition    text        NOT NULL,
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    dropped_at   timestamptz NOT NULL DEFAULT now(),
    events       bigint      NOT NULL,
    default_days integer     NOT NULL,
    event_id     uuid        NOT NULL UNIQUE
);

COMMENT ON TABLE retention_drops IS
    'One row per audit_events partition dropped by retention (audit_events_retention_drop); append-only.';

CREATE TABLE retention_dropped_chains (
    correlation_id  varchar(255) NOT NULL,
    drop_id         bigint       NOT NULL REFERENCES retention_drops (id),
    events          bigint       NOT NULL,
    first_timestamp timestamptz  NOT NULL,
    last_timestamp  timestamptz  NOT NULL,
    -- Null when none of them has a chain_seq (stored before migration
    -- 000006 or with INTEGRITY_DISABLED).
    min_chain_seq   bigint,
    max_chain_seq   bigint,
    PRIMARY KEY (correlation_id, drop_id)
);

COMMENT ON TABLE retention_dropped_chains IS
    'Per dropped partition and correlation_id: the events retention removed from that chain; append-only.';

CREATE TRIGGER retention_drops_append_only
    BEFORE UPDATE OR DELETE ON retention_drops
    FOR EACH ROW EXECUTE FUNCTION auditstream_append_only();
CREATE TRIGGER retention_drops_no_truncate
    BEFORE TRUNCATE ON retention_drops
    FOR EACH STATEMENT EXECUTE FUNCTION auditstream_append_only();
CREATE TRIGGER retention_dropped_chains_append_only
    BEFORE UPDATE OR DELETE ON retention_dropped_chains
    FOR EACH ROW EXECUTE FUNCTION auditstream_append_only();
CREATE TRIGGER retention_dropped_chains_no_truncate
    BEFORE TRUNCATE ON retention_dropped_chains
    FOR EACH STATEMENT EXECUTE FUNCTION auditstream_append_only();

-- ---------------------------------------------------------------------------
-- audit_events_retention_drop(month, default_days, event_id): drops the
-- monthly partition holding month when, and only when, every event in it
-- is past its own retention (event_timestamp + coalesce(retention_days,
-- default_days) days before now()) and none is under a legal hold. It
-- returns one row: outcome 'dropped' (with the number of events and the
-- retention_drops id), 'held' (with the correlation ids whose holds keep
-- it), 'retained' (some event is within its retention, or the partition
-- is empty and its period younger than the default retention) or
-- 'missing'.
--
-- It is the only way rows leave audit_events, and it never deletes a row:
-- the partition goes as a whole, with its rows of audit_event_ids and its
-- bookkeeping, in the caller's one transaction, so a connection lost
-- half-way leaves everything as it was.
--
-- SECURITY DEFINER, owned by the role that migrates (the owner of
-- audit_events and its partitions), so a writer role with INSERT and
-- SELECT alone can run retention and needs no DDL right. For the same
-- reason nothing that decides what is dropped comes from the caller but
-- the default retention: the time is the server's now(), the per-event
-- retention and the holds are the database's. EXECUTE is granted to the
-- writer's role only (README, least privilege).
--
-- Cost: one index probe on the partition's primary key decides most calls
-- ('retained': an event without its own retention is younger than the
-- default), without any lock. Past that, under a SHARE lock on the
-- partition (queries go on; a write into that month waits), a scan finds
-- whether any event's own retention_days keeps it, one probe per hold in
-- force checks the holds, and then the drop itself: the register's rows of
-- the period are deleted and DROP TABLE waits (at most lock_timeout) for
-- the queries reading audit_events at that moment.
--
-- Lock order, which keeps it from deadlocking with a placement (which
-- locks legal_holds before it counts events): the partition, then
-- legal_holds (SHARE: no hold is placed or released until the drop
-- commits), then audit_events for the DROP.
-- ---------------------------------------------------------------------------
CREATE FUNCTION audit_events_retention_drop(month timestamptz, default_days integer, event_id uuid)
RETURNS TABLE (outcome text, events bigint, drop_id bigint, held_correlation_ids text[])
LANGUAGE plpgsql
SECURITY DEFINER
SET TimeZone = 'UTC'
SET lock_timeout = '2s'
AS $$
DECLARE
    lo        timestamptz := date_trunc('month', month);
    hi        timestamptz := lo + interval '1 month';
    part      text        := 'audit_events_p' || to_char(lo, 'YYYYMM');
    -- Oldest event_timestamp an event without retention_days may have and
    -- still be kept.
    keep_from timestamptz := now() - make_interval(days => default_days);
    live      boolean;
    held      text[];
    n         bigint;
    did       bigint;
BEGIN
    IF month IS NULL OR event_id IS NULL OR default_days IS NULL OR default_days NOT BETWEEN 1 AND 2555 THEN
        RAISE EXCEPTION 'audit_events_retention_drop: month and event_id are required, default_days must be 1 to 2555'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'audit_events'::regclass
                   AND inhrelid = to_regclass(quote_ident(part))) THEN
        RETURN QUERY SELECT 'missing'::text, NULL::bigint, NULL::bigint, NULL::text[];
        RETURN;
    END IF;

    -- The common answer, without a lock.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE event_timestamp >= $1 AND retention_days IS NULL)', part)
        INTO live USING keep_from;
    IF live THEN
        RETURN QUERY SELECT 'retained'::text, NULL::bigint, NULL::bigint, NULL::text[];
        RETURN;
    END IF;

    -- From here on no event can be added to the partition: what is checked
    -- is what is dropped.
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE event_timestamp >= $1 AND retention_days IS NULL)', part)
        INTO live USING keep_from;
    IF NOT live THEN
        -- No event can be kept longer than 2555 days: older ones need no look.
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE event_timestamp >= $1 AND retention_days IS NOT NULL
                        AND event_timestamp + make_interval(days => retention_days) >= now())', part)
            INTO live USING now() - interval '2555 days';
    END IF;
    IF live THEN
        RETURN QUERY SELECT 'retained'::text, NULL::bigint, NULL::bigint, NULL::text[];
        RETURN;
    END IF;

    LOCK TABLE legal_holds IN SHARE MODE;
    EXECUTE format('SELECT array_agg(h.correlation_id::text ORDER BY h.correlation_id) FROM legal_holds h
                    WHERE h.released_at IS NULL AND EXISTS (SELECT 1 FROM %I e WHERE e.correlation_id = h.correlation_id)', part)
        INTO held;
    IF held IS NOT NULL THEN
        RETURN QUERY SELECT 'held'::text, NULL::bigint, NULL::bigint, held;
        RETURN;
    END IF;

    EXECUTE format('SELECT count(*) FROM %I', part) INTO n;
    -- An empty partition is kept until its period is past the default
    -- retention: it is ready for late events of a recent month, and
    -- nothing in it has expired.
    IF n = 0 AND hi > keep_from THEN
        RETURN QUERY SELECT 'retained'::text, NULL::bigint, NULL::bigint, NULL::text[];
        RETURN;
    END IF;
    INSERT INTO retention_drops (partition, period_start, period_end, events, default_days, event_id)
    VALUES (part, lo, hi, n, default_days, audit_events_retention_drop.event_id)
    RETURNING id INTO did;
    EXECUTE format('INSERT INTO retention_dropped_chains
                    SELECT correlation_id, $1, count(*), min(event_timestamp), max(event_timestamp), min(chain_seq), max(chain_seq)
                    FROM %I GROUP BY correlation_id', part) USING did;
    DELETE FROM audit_event_ids WHERE event_timestamp >= lo AND event_timestamp < hi;
    EXECUTE format('DROP TABLE %I', part);
    RETURN QUERY SELECT 'dropped'::text, n, did, NULL::text[];
END;
$$;

COMMENT ON FUNCTION audit_events_retention_drop(timestamptz, integer, uuid) IS
    'Drops the monthly audit_events partition holding month, with its audit_event_ids rows, when every event is past its retention and none is held.';

-- Partitions are created by the same owner, so the writer's role needs no
-- CREATE right either, and what the retention function drops is always
-- the owner's.
ALTER FUNCTION audit_events_ensure_partition(timestamptz) SECURITY DEFINER;

-- A SECURITY DEFINER function must not resolve names through a search_path
-- its caller chooses: both are pinned to the schema they were created in
-- (whatever schema the migrating role works in), then pg_temp.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_events_ensure_partition(timestamptz) SET search_path = %I, pg_temp', current_schema());
    EXECUTE format('ALTER FUNCTION audit_events_retention_drop(timestamptz, integer, uuid) SET search_path = %I, pg_temp', current_schema());
END;
$$;

-- Only the roles granted it may run them (README: least privilege); the
-- owner always may.
REVOKE EXECUTE ON FUNCTION audit_events_ensure_partition(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION audit_events_retention_drop(timestamptz, integer, uuid) FROM PUBLIC;
