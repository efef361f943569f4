package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDatabaseURL names the variable that points tests at an existing
// PostgreSQL server (see EnvKafkaBrokers for why the harness reads it).
const EnvDatabaseURL = "DATABASE_URL"

// ErrExternal is returned by Stop and Start on a Postgres backed by
// DATABASE_URL: the harness does not own that server, so it cannot take it
// down to simulate an outage.
var ErrExternal = errors.New("testenv: postgres from " + EnvDatabaseURL + " cannot be stopped or started")

// debianBinGlob is where Debian's postgresql package installs the server
// binaries, one directory per major version, none of them on PATH.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// readyTimeout bounds how long Start waits for a server to accept
// connections when the caller's context has no deadline; a healthy one
// takes well under a second.
const readyTimeout = 30 * time.Second

// Postgres is a PostgreSQL database for tests: a throwaway server of its own,
// or a fresh database on the server named by DATABASE_URL.
type Postgres struct {
	url string

	// Embedded server; zero for an external one.
	bin  string              // directory holding initdb and postgres
	dir  string              // temporary root: data/, sock/, postgres.log
	port int                 // kept across Stop/Start so URL stays valid
	cred *syscall.Credential // nil unless we run as root

	// serverArgs are the embedded server's settings beyond the defaults
	// of Start (TLS), kept for every restart.
	serverArgs []string
	// durable keeps PostgreSQL's fsync, synchronous_commit and
	// full_page_writes on, as a user runs it (StartDurablePostgres).
	durable bool

	// External server.
	adminURL string // DATABASE_URL, for dropping the database
	dbName   string

	mu     sync.Mutex
	proc   *exec.Cmd
	exited chan struct{} // closed when proc has been reaped
	closed bool
}

// StartPostgres returns a ready, empty database. With DATABASE_URL set it
// creates a database with a random name there (dropped by Close); otherwise
// it initialises and starts a throwaway server from the local PostgreSQL
// binaries on a free 127.0.0.1 port.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	if dsn := os.Getenv(EnvDatabaseURL); dsn != "" {
		return createDatabase(ctx, dsn)
	}
	return startEmbeddedPostgres(ctx, "", false)
}

// StartDurablePostgres is StartPostgres with the embedded server as a user
// runs it: fsync, synchronous_commit and full_page_writes on (the server's
// defaults), where tests turn them off. Benchmarks use it, so that every
// commit they time is one that survives a power cut.
func StartDurablePostgres(ctx context.Context) (*Postgres, error) {
	if dsn := os.Getenv(EnvDatabaseURL); dsn != "" {
		return createDatabase(ctx, dsn)
	}
	return startEmbeddedPostgres(ctx, "", true)
}

// StartTLSPostgres starts a throwaway server that takes TCP connections
// over TLS only: ssl=on with a certificate for the loopback addresses from
// a CA made for it (written to dir), and a pg_hba.conf whose only TCP
// entries are hostssl, so a plaintext connection is refused. URL verifies
// the server's certificate and name (sslmode=verify-full) against that CA.
// It is always embedded: DATABASE_URL names a server whose configuration
// the harness cannot choose.
func StartTLSPostgres(ctx context.Context, dir string) (*Postgres, error) {
	return startEmbeddedPostgres(ctx, dir, false)
}

// URL returns a pgx/libpq connection string for the database.
func (p *Postgres) URL() string { return p.url }

func (p *Postgres) external() bool { return p.adminURL != "" }

func createDatabase(ctx context.Context, dsn string) (*Postgres, error) {
	name := "testenv_" + randomHex(8)
	dbURL, err := withDatabase(dsn, name)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", EnvDatabaseURL, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create test database %s: %w", name, err)
	}
	return &Postgres{url: dbURL, adminURL: dsn, dbName: name}, nil
}

// Exec runs SQL statements on the database, for a test that prepares a
// state the code under test must cope with (a role, a broken schema).
func (p *Postgres) Exec(ctx context.Context, sql string) error {
	return execSQL(ctx, p.url, sql)
}

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to the test database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("exec %q: %w", sql, err)
	}
	return nil
}

// UnusableDatabase is a connection string no binary can start against, and
// the words its error must contain.
type UnusableDatabase struct {
	Name, URL, Reason string
}

// UnusableDatabases returns connection strings to p's server that no retry
// can make work, for tests that a binary exits rather than waits: a
// database whose schema is dirty (its migration table as golang-migrate
// leaves it when a migration failed half-way; dropped when the test ends),
// a role PostgreSQL refuses (SQLSTATE 28000) and a database that does not
// exist (3D000).
func UnusableDatabases(t TB, p *Postgres) []UnusableDatabase {
	t.Helper()
	ctx := t.Context()
	name := "dirty_" + randomHex(4)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	must(p.Exec(ctx, "CREATE DATABASE "+name))
	t.Cleanup(func() {
		if err := p.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	dirty, err := p.URLAs("", name)
	must(err)
	must(execSQL(ctx, dirty, `CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
		INSERT INTO schema_migrations VALUES (1, true)`))
	unknownRole, err := p.URLAs("nobody", "")
	must(err)
	missing, err := p.URLAs("", "no_such_database")
	must(err)
	return []UnusableDatabase{
		{Name: "dirty schema", URL: dirty, Reason: "Dirty database version 1"},
		{Name: "role refused", URL: unknownRole, Reason: `role "nobody" does not exist (SQLSTATE 28000)`},
		{Name: "missing database", URL: missing, Reason: `database "no_such_database" does not exist (SQLSTATE 3D000)`},
	}
}

// URLAs returns the connection string of database on the same server, as
// role user (with no password), for tests of connections PostgreSQL
// refuses. An empty argument keeps the URL's own.
func (p *Postgres) URLAs(user, database string) (string, error) {
	dsn := p.url
	var err error
	if database != "" {
		if dsn, err = withDatabase(dsn, database); err != nil {
			return "", err
		}
	}
	if user == "" {
		return dsn, nil
	}
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", dsn, err)
		}
		u.User = url.User(user)
		return u.String(), nil
	}
	return dsn + " user=" + user + " password=''", nil
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// withDatabase returns dsn with its database replaced by name, in the same
// form (URL or keyword/value) so every other setting carries over.
func withDatabase(dsn, name string) (string, error) {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDatabaseURL, err)
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// In keyword/value form the last occurrence of a key wins.
	return dsn + " dbname=" + name, nil
}

func startEmbeddedPostgres(ctx context.Context, tlsDir string, durable bool) (_ *Postgres, err error) {
	bin, err := findPostgresBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		return nil, fmt.Errorf("postgres temp dir: %w", err)
	}
	p := &Postgres{bin: bin, dir: dir, durable: durable}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	// initdb and postgres refuse to run as root (a server bug would then
	// own the machine); tests in containers often are root, so run them
	// as the postgres user the Debian package creates.
	if os.Geteuid() == 0 {
		if p.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	if err := os.Mkdir(p.sockDir(), 0o700); err != nil {
		return nil, fmt.Errorf("postgres socket dir: %w", err)
	}
	if p.cred != nil {
		for _, d := range []string{dir, p.sockDir()} {
			if err := os.Chown(d, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				return nil, fmt.Errorf("hand %s to the postgres user: %w", d, err)
			}
		}
	}

	initdb := p.command(ctx, "initdb",
		"--pgdata", p.dataDir(),
		"--username", "postgres",
		"--auth", "trust",
		"--encoding", "UTF8",
		"--locale", "C",
		// The data is thrown away: skip the fsyncs that dominate
		// initdb's run time.
		"--no-sync",
	)
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	if tlsDir != "" {
		if err := p.requireTLS(tlsDir); err != nil {
			return nil, err
		}
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// tlsOnlyHBA lets the harness in through the socket and everyone in over
// TCP with TLS; with no host (plaintext-or-TLS) line, a plaintext TCP
// connection matches nothing and is refused (SQLSTATE 28000, "no
// encryption").
const tlsOnlyHBA = `local   all all              trust
hostssl all all 127.0.0.1/32 trust
hostssl all all ::1/128      trust
`

// requireTLS gives the server a certificate from a CA of its own (files in
// dir), turns ssl on, replaces pg_hba.conf with tlsOnlyHBA, and points URL
// at the server with verify-full against the CA.
func (p *Postgres) requireTLS(dir string) error {
	ca, err := NewCA(dir, "postgres")
	if err != nil {
		return err
	}
	server, err := ca.IssueServer("postgres-server", Loopback...)
	if err != nil {
		return err
	}
	// PostgreSQL reads its key as the postgres user and refuses one that
	// others can read: copies in the data directory, owned by that user.
	files := map[string]string{"server.crt": server.CertFile, "server.key": server.KeyFile}
	for name, from := range files {
		b, err := os.ReadFile(from)
		if err != nil {
			return fmt.Errorf("postgres TLS: %w", err)
		}
		if err := p.writeDataFile(name, b); err != nil {
			return err
		}
	}
	if err := p.writeDataFile("pg_hba.conf", []byte(tlsOnlyHBA)); err != nil {
		return err
	}
	p.serverArgs = []string{"-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=verify-full&sslrootcert=%s",
		p.port, url.QueryEscape(ca.CertFile()))
	return nil
}

// writeDataFile writes a file of the data directory, readable by the
// server's user only.
func (p *Postgres) writeDataFile(name string, data []byte) error {
	path := filepath.Join(p.dataDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("postgres %s: %w", name, err)
	}
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("hand %s to the postgres user: %w", name, err)
		}
	}
	return nil
}

// findPostgresBin returns the directory holding initdb and postgres: PATH
// first, so a developer can choose a version, then the newest Debian install.
func findPostgresBin() (string, error) {
	initdb, err1 := exec.LookPath("initdb")
	_, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		// Debian links the binaries into PATH from their versioned
		// directory; resolve the link so both come from one install.
		if real, err := filepath.EvalSymlinks(initdb); err == nil {
			initdb = real
		}
		return filepath.Dir(initdb), nil
	}
	dirs, _ := filepath.Glob(debianBinGlob)
	// Sort by major version number, not by string: "9" < "15".
	slices.SortFunc(dirs, func(a, b string) int {
		return majorVersion(a) - majorVersion(b)
	})
	for _, d := range slices.Backward(dirs) {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("testenv: no PostgreSQL server binaries (initdb, postgres) on PATH or in %s: "+
		"install them (Debian/Ubuntu: apt-get install postgresql) or set %s to an existing server",
		debianBinGlob, EnvDatabaseURL)
}

func majorVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("testenv: running as root, and PostgreSQL refuses root: "+
			"need a 'postgres' user to run it as (Debian's postgresql package creates one) or set %s: %w",
			EnvDatabaseURL, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort asks the kernel for a free port. Another process could take it
// before postgres binds it; on a test machine that is rare enough to accept
// in exchange for a port that stays fixed across Stop/Start.
func freePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}

// FreeAddr returns a 127.0.0.1 address whose port nothing listens on now,
// for a server a test or benchmark is about to start.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }
func (p *Postgres) sockDir() string { return filepath.Join(p.dir, "sock") }
func (p *Postgres) logPath() string { return filepath.Join(p.dir, "postgres.log") }

// command prepares one of the server binaries to run as the postgres user
// when we are root.
func (p *Postgres) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, name), args...)
	cmd.Dir = p.dir
	// A clean environment: PG* variables of the caller (PGDATA, PGPORT…)
	// must not redirect the throwaway server.
	cmd.Env = []string{"LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	return cmd
}

// Start starts the server (again) on the same port and data directory and
// waits until it accepts connections. Starting a running server is a no-op.
func (p *Postgres) Start(ctx context.Context) error {
	if p.external() {
		return ErrExternal
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("testenv: postgres is closed")
	}
	if p.proc != nil {
		return nil
	}

	logFile, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("postgres log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	// Not CommandContext: the server outlives this call; Stop ends it.
	args := []string{
		"-D", p.dataDir(),
		"-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + p.sockDir(),
		// Every package's tests open pools (pgx defaults to 4+ per
		// pool, more under parallel tests); 100 runs out.
		"-c", "max_connections=200",
	}
	if !p.durable {
		// Durability buys nothing for data that is thrown away.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := p.command(context.Background(), "postgres", append(args, p.serverArgs...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// If the test binary dies without closing us (killed, or a panic
	// past TestMain), the kernel sends the server SIGQUIT: immediate
	// shutdown, which also ends its backends. The temp dir stays behind
	// in that case, but no server does. Go applies this after switching
	// to the postgres user, which would otherwise clear it. (Linux ties it
	// to the starting thread, not the process; Go only retires threads of
	// goroutines that exit while locked to them, which callers don't do.)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reaps the child; its status is in the log
		close(exited)
	}()
	p.proc, p.exited = cmd, exited

	if err := p.waitReady(ctx, exited); err != nil {
		p.stopLocked(context.Background())
		return err
	}
	return nil
}

// waitReady polls until the server accepts a query, it exits, or ctx ends.
func (p *Postgres) waitReady(ctx context.Context, exited <-chan struct{}) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(attempt, p.url)
		if err == nil {
			err = conn.Ping(attempt)
			conn.Close(attempt)
		}
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-exited:
			return fmt.Errorf("postgres exited during start-up:\n%s", p.logTail())
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v)\n%s", ctx.Err(), lastErr, p.logTail())
		case <-tick.C:
		}
	}
}

// logTail returns the end of the server log for error messages.
func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(p.logPath())
	const limit = 4 << 10
	if len(b) > limit {
		b = b[len(b)-limit:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// Stop shuts the server down and keeps its data, so a test can simulate a
// database outage and then Start it again. Stopping a stopped server is a
// no-op.
func (p *Postgres) Stop(ctx context.Context) error {
	if p.external() {
		return ErrExternal
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(ctx)
}

// stopLocked asks for a fast shutdown (SIGINT: abort open transactions,
// disconnect clients, checkpoint) and waits for the server to exit. Smart
// shutdown (SIGTERM) would wait for the code under test to close its pools.
// If ctx ends first, the server is killed, so the caller is never left with
// a half-stopped server on its port.
func (p *Postgres) stopLocked(ctx context.Context) error {
	if p.proc == nil {
		return nil
	}
	proc, exited := p.proc, p.exited
	p.proc, p.exited = nil, nil

	if err := proc.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		_ = proc.Process.Kill()
		<-exited
		return fmt.Errorf("stop postgres: killed after %w", ctx.Err())
	}
}

// Close stops the server and removes its files; for DATABASE_URL it drops
// the test database, disconnecting whatever still uses it. It is idempotent.
func (p *Postgres) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if p.external() {
		return p.dropDatabase(ctx)
	}
	err := p.stopLocked(ctx)
	if rmErr := os.RemoveAll(p.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove postgres dir: %w", rmErr))
	}
	return err
}

func (p *Postgres) dropDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.adminURL)
	if err != nil {
		return fmt.Errorf("drop test database %s: %w", p.dbName, err)
	}
	defer conn.Close(ctx)
	// FORCE (PostgreSQL 13+) ends sessions a test forgot to close, which
	// would otherwise make DROP fail and leak the database.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{p.dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop test database %s: %w", p.dbName, err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// CPU returns the CPU time the embedded server has used so far: the
// postmaster, its live backends and workers, and those it has reaped.
// Benchmarks read it before and after a run; unlike wall time, it hardly
// depends on what else the machine runs.
func (p *Postgres) CPU() (time.Duration, error) {
	if p.external() {
		return 0, ErrExternal
	}
	p.mu.Lock()
	proc := p.proc
	p.mu.Unlock()
	if proc == nil {
		return 0, errors.New("testenv: postgres is not running")
	}
	postmaster := proc.Process.Pid
	self, err := procStat(postmaster)
	if err != nil {
		return 0, err
	}
	ticks := self.utime + self.stime + self.cutime + self.cstime
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procStat(pid); err == nil && st.ppid == int64(postmaster) {
			ticks += st.utime + st.stime
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

type procTimes struct{ ppid, utime, stime, cutime, cstime int64 }

// procStat reads the parent and the CPU times of pid from /proc.
func procStat(pid int) (procTimes, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	s := string(raw)
	// Fields after the command name, which may hold spaces and parentheses:
	// state is field 3, ppid 4, utime 14 ... cstime 17.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	get := func(field int) int64 { v, _ := strconv.ParseInt(f[field-3], 10, 64); return v }
	return procTimes{ppid: get(4), utime: get(14), stime: get(15), cutime: get(16), cstime: get(17)}, nil
}
