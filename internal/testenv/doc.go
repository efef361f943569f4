// Package testenv owns the external services that integration tests and
// `make dev` run against: a Kafka-protocol broker and a throwaway PostgreSQL.
//
// Both are real servers on loopback TCP, so the code under test uses its
// production clients (sarama, pgx) unchanged. By default they are embedded:
// franz-go's kfake runs in-process and keeps records in memory only, and
// PostgreSQL runs from the machine's own server binaries in a temporary
// directory. Setting KAFKA_BROKERS or DATABASE_URL points them at existing
// services instead; tests stay isolated there too (topics are created as
// needed, and each Postgres gets a fresh database that Close drops).
//
// A package usually shares one of each across its tests, started in TestMain:
//
//	var (
//		kafka *testenv.Kafka
//		pg    *testenv.Postgres
//	)
//
//	func TestMain(m *testing.M) {
//		ctx := context.Background()
//		var err error
//		if kafka, err = testenv.StartKafka(ctx, map[string]int32{"audit.events": 3}); err != nil {
//			log.Fatal(err)
//		}
//		if pg, err = testenv.StartPostgres(ctx); err != nil {
//			kafka.Close()
//			log.Fatal(err)
//		}
//		code := m.Run()
//		pg.Close()
//		kafka.Close()
//		os.Exit(code)
//	}
//
// A test that breaks its services on purpose (an outage test) takes private
// ones with NewKafka and NewPostgres, which are closed by t.Cleanup.
//
// Tests never skip for lack of a service: they fail with an error that says
// what to install or which variable to set.
package testenv
