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
// A package usually shares one of each across its tests, started by
// testmain.Main in its TestMain, which also closes them and checks for
// leaked goroutines:
//
//	var shared struct {
//		kafka *testenv.Kafka
//		pg    *testenv.Postgres
//	}
//
//	func TestMain(m *testing.M) {
//		os.Exit(testmain.Main(m, "writer tests", testmain.Both, func(ctx context.Context, s *testmain.Shared) error {
//			shared.kafka, shared.pg = s.Kafka, s.Postgres
//			_, err := store.Migrate(ctx, shared.pg.URL(), zap.NewNop())
//			return err
//		}))
//	}
//
// A test that breaks its services on purpose (an outage test) takes private
// ones with NewKafka and NewPostgres, which are closed by t.Cleanup.
//
// Tests never skip for lack of a service: they fail with an error that says
// what to install or which variable to set.
//
// The package does not import testing or goleak (its helpers take a TB, and
// testmain holds what needs testing.M), so devstack and auditbench can
// start the same services without linking test code.
package testenv
