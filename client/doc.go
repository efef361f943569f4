// Package client sends audit events to auditstream's ingest-api from a Go
// service, so that no service writes its own retry loop.
//
// A [Client] validates each event when it is sent, with the same code the
// server runs, buffers it in memory and delivers it in batch requests
// (POST /api/v1/audit/events/batch) from one background goroutine:
//
//	c, err := client.New("https://audit.example.com", client.WithToken(token))
//	if err != nil { ... }
//	defer c.Close(ctx) // delivers what is buffered
//
//	err = c.Send(ctx, client.Event{
//		Version:       "1.0",
//		EventType:     "workflow.step.finished",
//		EventCategory: client.CategoryWorkflow,
//		EventAction:   "finished",
//		EventOutcome:  client.OutcomeSuccess,
//		CorrelationID: "rr-2025-001",
//		DurationMS:    new(int64(1500)),
//		EventData:     map[string]any{"step": 1},
//	})
//
// # Guarantees
//
// An event Send accepted is delivered or reported, never dropped silently:
//
//   - A bad event fails at the call: Send returns a [*ValidationError]
//     naming every rejected field, as the server's 400 would.
//   - Every event gets a client-side event_id (a UUIDv7, unless it has one)
//     before its first attempt. The writer stores an event_id once, so a
//     retry after a lost answer, a timeout or a 503 never stores it twice.
//   - Batches go out when they hold 500 events, when the oldest has waited
//     1 s, or before they would pass 8 MiB ([WithBatchSize],
//     [WithBatchAge], [WithMaxBatchBytes]); [Client.Flush] sends at once.
//   - The buffer is bounded (10,000 events, [WithBufferSize]). When it is
//     full, Send blocks until there is room or its context ends; with
//     [WithNonBlockingSend] it returns [ErrBufferFull] instead.
//   - Close stops taking events and delivers everything buffered.
//
// # Retries
//
// 201 and 202 (accepted into the server's local spool) both mean accepted.
// Network errors, timeouts and 5xx answers are retried, with exponential
// backoff and jitter (200 ms growing to 30 s, [WithRetryWait]); 429 and 503
// wait at least as long as their Retry-After asks. While the client is open
// it retries for as long as it takes: a buffer that fills up holds Send back
// rather than losing events. When the context of [Client.Close] ends, the
// events still unsent are reported as failures and Close returns an
// [*UnsentError] counting them.
//
// Other 4xx answers are final: retrying the same request cannot change
// them. Each refused event goes to the failure handler ([WithFailureHandler];
// without one it is logged at error level) as a [Failure] whose error is the
// server's RFC 7807 [*Problem]. A batch refused for some of its events (a
// 400 whose field_errors name them as "[i].field") has only those reported,
// each with its own field errors; the others are sent again at once. A batch
// refused as a whole (413, or a 400 naming no event) is split in halves
// until it passes or the culprit stands alone.
//
// # Notifications
//
// [Client.Notify] records a notification delivery ([Notification],
// POST /api/v1/audit/notifications). The API has no batch endpoint for
// them, so Notify waits for the answer, retrying like a batch until its
// context ends; its notification_id makes the retries idempotent.
//
// # Options
//
// [WithToken] or [WithTokenSource] authenticate with a bearer token,
// [WithTLSConfig] sets a private CA or a client certificate, and
// [WithHTTPClient] replaces the HTTP client altogether. [WithMetrics] hands
// the client's counters (sent, retried, failed, queue depth) to the
// service's metrics library; the package itself depends on none. When the
// server's validation settings differ from the defaults, tell the client
// with [WithCategories], [WithMaxEventDataBytes] and [WithMaxFutureSkew], or
// it refuses events the server would take (or the reverse).
package client
