package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	_ "modernc.org/sqlite"

	"github.com/backflow/backflow/clients/go/backflow"
	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

const token = "client-test-token"

// address is the `backflow standalone` that TestMain starts for the whole package.
var address string

// TestMain starts `backflow standalone` on a free loopback port (it binds port 0 and prints
// the address), requiring an API token, and stops it after the tests.
func TestMain(m *testing.M) {
	os.Exit(runWithServer(m))
}

func runWithServer(m *testing.M) int {
	dir, err := os.MkdirTemp("", "backflow-go-client-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	started, stop, err := startStandalone(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	address = started
	return m.Run()
}

// repoRoot is the repository's root, three levels above this package's directory (where `go
// test` runs it).
func repoRoot() string {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}

// backflowBin is the backflow binary the tests start: $BACKFLOW_BIN, else
// $CARGO_TARGET_DIR/debug/backflow (target/ of the repository by default).
func backflowBin() (string, error) {
	bin := os.Getenv("BACKFLOW_BIN")
	if bin == "" {
		target := os.Getenv("CARGO_TARGET_DIR")
		if target == "" {
			target = filepath.Join(repoRoot(), "target")
		}
		bin = filepath.Join(target, "debug", "backflow")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the backflow binary is missing at %s: build it with `cargo build -p backflow --bin backflow` or set BACKFLOW_BIN", bin)
	}
	return bin, nil
}

// startStandalone starts `backflow standalone` on a free loopback port with its state and log
// in dir, requiring the API token, with extraEnv (`KEY=value`) added to its environment, and
// waits until it answers a client made with the token and opts. It returns the address it
// printed (`http://…`, or `https://…` when it serves TLS) and a function that stops it.
func startStandalone(dir string, extraEnv []string, opts ...backflow.Option) (string, func(), error) {
	bin, err := backflowBin()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "standalone", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "state"))
	cmd.Env = append(os.Environ(),
		"BACKFLOW__CONTROL_PLANE__API_TOKENS="+token,
		"BACKFLOW__CONTROL_PLANE__WORKER_TOKEN=client-test-worker-token")
	cmd.Env = append(cmd.Env, extraEnv...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	logPath := filepath.Join(dir, "standalone.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	listening := regexp.MustCompile(`listening on (https?://\S+)`)
	found := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if match := listening.FindStringSubmatch(scanner.Text()); match != nil {
				select {
				case found <- match[1]:
				default:
				}
			}
		}
	}()
	var started string
	select {
	case started = <-found:
	case <-time.After(30 * time.Second):
		stop()
		log, _ := os.ReadFile(logPath)
		return "", nil, fmt.Errorf("backflow standalone did not start:\n%s", log)
	}
	if err := waitReady(started, opts...); err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		return "", nil, fmt.Errorf("backflow standalone at %s does not answer: %w\n%s", started, err, log)
	}
	return started, stop, nil
}

func waitReady(address string, opts ...backflow.Option) error {
	c, err := backflow.New(address, append([]backflow.Option{backflow.WithToken(token)}, opts...)...)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := c.Syncs.ListSyncs(ctx, &backflowv1.ListSyncsRequest{})
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fixture is one test's data: a CSV source with three rows and a SQLite destination whose
// CHECK constraint refuses the row with id 2.
type fixture struct {
	id          string
	source      map[string]any
	destination map[string]any
	database    string
}

// createConnections adds the fixture's `wh-ID` (files) and `app-ID` (SQLite) connections.
func createConnections(ctx context.Context, t *testing.T, c *backflow.Client, f fixture) {
	t.Helper()
	if _, err := c.CreateConnection(ctx, "wh-"+f.id, "files", f.source); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateConnection(ctx, "app-"+f.id, "sqlite", f.destination); err != nil {
		t.Fatal(err)
	}
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "scores.csv")
	if err := os.WriteFile(csv, []byte("id,name,score\n1,ada,0.5\n2,bob,-1.0\n3,cy,2.5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	database := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE scores (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL CHECK (score >= 0))`); err != nil {
		t.Fatal(err)
	}
	return fixture{
		id:          fmt.Sprintf("go%x", time.Now().UnixNano()),
		source:      map[string]any{"tables": map[string]any{"scores": csv}},
		destination: map[string]any{"path": database},
		database:    database,
	}
}

type row struct {
	id    int64
	name  string
	score float64
}

func (f fixture) destinationRows(t *testing.T) []row {
	t.Helper()
	db, err := sql.Open("sqlite", f.database)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, name, score FROM scores ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.name, &r.score); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func connect(t *testing.T, opts ...backflow.Option) *backflow.Client {
	t.Helper()
	c, err := backflow.New(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func scoresSync(f fixture, query string) *backflowv1.Sync {
	return &backflowv1.Sync{
		Source:     &backflowv1.SyncSource{Connection: "wh-" + f.id, Query: query},
		PrimaryKey: []string{"id"},
		Destination: &backflowv1.SyncDestination{
			Connection: "app-" + f.id,
			Object:     "scores",
			Mode:       backflowv1.SyncMode_SYNC_MODE_UPSERT,
		},
	}
}

func TestTriggerWaitFollowsTheRunToItsCountsRejectedRowsAndDestinationRows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	c := connect(t, backflow.WithToken(token))
	createConnections(ctx, t, c, f)
	created, err := c.CreateSync(ctx, "scores-"+f.id, scoresSync(f, "SELECT id, name, score FROM scores"))
	if err != nil {
		t.Fatal(err)
	}
	if created.GetName() != "syncs/scores-"+f.id {
		t.Fatalf("created sync is named %q", created.GetName())
	}

	pending, err := c.Trigger(ctx, "scores-"+f.id)
	if err != nil {
		t.Fatal(err)
	}
	if pending.Coalesced {
		t.Fatalf("the first trigger of a new sync coalesced with %s", pending.Run.GetName())
	}
	run, err := pending.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.GetState() != backflowv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("run ended %s", run.GetState())
	}
	counts := run.GetCounts()
	if counts.GetRead() != 3 || counts.GetAdded() != 3 || counts.GetWritten() != 2 || counts.GetFailed() != 1 {
		t.Fatalf("unexpected counts %v", counts)
	}
	if run.GetRejectedRows() != 1 {
		t.Fatalf("run reports %d rejected rows, want 1", run.GetRejectedRows())
	}
	rejected, err := c.RejectedRows(ctx, run.GetName())
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 1 || rejected[0].GetKey() != "id=2" || !strings.Contains(rejected[0].GetMessage(), "CHECK constraint failed") {
		t.Fatalf("unexpected rejected rows %v", rejected)
	}
	want := []row{{1, "ada", 0.5}, {3, "cy", 2.5}}
	if got := f.destinationRows(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("destination rows %v, want %v", got, want)
	}
	runs, err := c.ListRuns(ctx, "scores-"+f.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].GetName() != run.GetName() {
		t.Fatalf("unexpected run history %v", runs)
	}
}

func TestAnInvalidSyncReturnsTheServersFieldViolations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	c := connect(t, backflow.WithToken(token))
	if _, err := c.CreateConnection(ctx, "wh-"+f.id, "files", f.source); err != nil {
		t.Fatal(err)
	}
	bad := scoresSync(f, " ")
	bad.PrimaryKey = nil
	_, err := c.CreateSync(ctx, "bad-"+f.id, bad)
	var apiErr *backflow.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want a *backflow.Error, got %v", err)
	}
	if apiErr.Code != codes.InvalidArgument {
		t.Fatalf("code %s, want InvalidArgument", apiErr.Code)
	}
	if _, ok := apiErr.Violation("sync.source.query"); !ok {
		t.Fatalf("no violation of sync.source.query in %v", apiErr.FieldViolations)
	}
	v, ok := apiErr.Violation("sync.primary_key")
	if !ok || v.Description != "must name at least one column" {
		t.Fatalf("unexpected violations %v", apiErr.FieldViolations)
	}
}

func TestAFailedRunIsARunFailedError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	c := connect(t, backflow.WithToken(token))
	createConnections(ctx, t, c, f)
	broken := scoresSync(f, "SELECT id, no_such_column FROM scores")
	one := uint32(1)
	broken.Options = &backflowv1.SyncOptions{MaxAttempts: &one}
	if _, err := c.CreateSync(ctx, "broken-"+f.id, broken); err != nil {
		t.Fatal(err)
	}
	pending, err := c.Trigger(ctx, "broken-"+f.id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = pending.Wait(ctx)
	var failed *backflow.RunFailedError
	if !errors.As(err, &failed) {
		t.Fatalf("want a *backflow.RunFailedError, got %v", err)
	}
	if failed.Run.GetState() != backflowv1.RunState_RUN_STATE_FAILED || failed.Run.GetError().GetCode() == "" {
		t.Fatalf("unexpected failed run %v", failed.Run)
	}
}

func TestACallWithoutTheTokenIsUnauthenticated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pending, err := connect(t).Trigger(ctx, "anything")
	if !backflow.IsCode(err, codes.Unauthenticated) {
		t.Fatalf("want Unauthenticated, got %v", err)
	}
	if pending != nil {
		t.Fatalf("a failed trigger returned a pending run %v", pending.Run)
	}
}
