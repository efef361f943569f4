-- 000004_notification_reservations: make ingest-api's notification_id
-- check atomic.
--
-- Until now ingest-api asked "is this notification_id stored?" and drew an
-- id in one statement, but nothing remembered the answer: concurrent
-- requests with one notification_id all passed the check, all got 201 with
-- different ids, and the writer stored one of them, so the other 201s
-- promised rows that never existed (SPEC 2.4: the 201 body is exactly what
-- is stored). notification_reservations remembers which request holds a
-- notification_id before its record is stored; notification_reserve takes
-- the hold (or reports who has it) in one round trip, and its primary key
-- lets exactly one of racing requests win.
--
-- A hold is keyed by the content: the SHA-256 of the record without the
-- values the API assigns (audit.Notification.ContentDigest). The same
-- content again is a retry (say after a 503 that timed out, when the record
-- may or may not be in Kafka) and gets the holder's id and created_at, so
-- every answer is the record that is stored. Other content gets 409.
--
-- A 503 must not keep a notification_id from being used for ever:
--   * When Kafka took nothing, ingest-api deletes the hold it made
--     (Store.ReleaseNotification), so the id is free at once.
--   * When the outcome is unknown (no acknowledgement in time) the hold
--     stays: the record may still be stored. After the TTL
--     (NOTIFICATION_RESERVATION_TTL, 24 h by default) a hold whose record was
--     never stored is taken over by the next request, whatever its content;
--     by then a record that did reach Kafka has long been stored unless the
--     writers were down for that whole time.
-- ingest-api deletes holds older than the TTL every hour
-- (Store.RunReservationPruning): by then the record is stored, and
-- notification_audit answers for it, or it never will be.
--
-- Records accepted with 202 (PostgreSQL unreachable) and direct producers'
-- records take no hold; the writer's ON CONFLICT (notification_id) DO
-- NOTHING still resolves those, as before.
CREATE TABLE notification_reservations (
    notification_id varchar(255) PRIMARY KEY,
    -- From notification_audit_id_seq, like every stored id.
    id              bigint       NOT NULL,
    content_digest  bytea        NOT NULL CHECK (length(content_digest) = 32),
    -- The created_at (and updated_at) the API gave the record: a retry is
    -- answered with it, so it must be the holder's, not a new one.
    reserved_at     timestamptz  NOT NULL
);

CREATE INDEX notification_reservations_reserved_at_idx ON notification_reservations (reserved_at);

COMMENT ON TABLE notification_reservations IS
    'notification_ids held by ingest-api requests until their record is stored; see notification_reserve.';

-- notification_reserve(nid, digest, at, ttl) returns (outcome, id,
-- created_at), outcome being
--   reserved  the caller now holds nid, with a new id and created_at = at;
--   retried   a holder with the same digest: its id and created_at;
--   held      a holder with another digest, younger than ttl (409);
--   stored    notification_audit has nid (409).
-- Each statement of a plpgsql function sees the rows committed before it
-- starts, so the loop sees a racing request's hold as soon as the INSERT
-- found it; it repeats only if that hold vanished again in between
-- (released or pruned). The id is drawn only on the way to a new hold, so
-- 409 answers use up no ids.
CREATE FUNCTION notification_reserve(nid text, digest bytea, at timestamptz, ttl interval,
    OUT outcome text, OUT id bigint, OUT created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    held notification_reservations%ROWTYPE;
BEGIN
    LOOP
        PERFORM 1 FROM notification_audit n WHERE n.notification_id = nid;
        IF FOUND THEN
            outcome := 'stored';
            RETURN;
        END IF;

        SELECT * INTO held FROM notification_reservations r WHERE r.notification_id = nid FOR UPDATE;
        IF FOUND THEN
            IF held.content_digest = digest THEN
                outcome := 'retried';
                id := held.id;
                created_at := held.reserved_at;
                RETURN;
            END IF;
            IF held.reserved_at >= now() - ttl THEN
                outcome := 'held';
                RETURN;
            END IF;
            -- An expired hold whose record was never stored.
            UPDATE notification_reservations r
            SET id = nextval('notification_audit_id_seq'), content_digest = digest, reserved_at = at
            WHERE r.notification_id = nid
            RETURNING r.id, r.reserved_at INTO id, created_at;
            outcome := 'reserved';
            RETURN;
        END IF;

        INSERT INTO notification_reservations AS r (notification_id, id, content_digest, reserved_at)
        VALUES (nid, nextval('notification_audit_id_seq'), digest, at)
        ON CONFLICT (notification_id) DO NOTHING
        RETURNING r.id, r.reserved_at INTO id, created_at;
        IF FOUND THEN
            outcome := 'reserved';
            RETURN;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION notification_reserve(text, bytea, timestamptz, interval) IS
    'Holds a notification_id for an ingest-api request, atomically; see 000004_notification_reservations.';
