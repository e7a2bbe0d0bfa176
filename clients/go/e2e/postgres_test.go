package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/backflow/backflow/clients/go/backflow"
	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

// postgres runs SQL on the test database through the psql command, so that the tests need no
// PostgreSQL driver.
type postgres struct {
	psql string
	url  string
}

// newPostgres finds the database ($BACKFLOW_TEST_POSTGRES_URL) and psql (on PATH, else the
// newest /usr/lib/postgresql/*/bin/psql); it fails the test when either is missing.
func newPostgres(t *testing.T) postgres {
	t.Helper()
	url := os.Getenv("BACKFLOW_TEST_POSTGRES_URL")
	if url == "" {
		t.Fatal("BACKFLOW_TEST_POSTGRES_URL is not set: start the test services and export their environment " +
			"(`scripts/services.sh start && eval \"$(scripts/services.sh env)\"`)")
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		installed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		major := func(path string) int {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
			return n
		}
		slices.SortFunc(installed, func(a, b string) int { return major(a) - major(b) })
		if len(installed) == 0 {
			t.Fatal("psql is neither on PATH nor in /usr/lib/postgresql/*/bin: install the PostgreSQL client")
		}
		psql = installed[len(installed)-1]
	}
	return postgres{psql: psql, url: url}
}

// query runs sql (one or more statements) and returns the output of the last one, unaligned
// and without headers, trimmed.
func (p postgres) query(t *testing.T, sql string) string {
	t.Helper()
	out, err := p.run(sql)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, sql)
	}
	return out
}

func (p postgres) run(sql string) (string, error) {
	cmd := exec.Command(p.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", p.url, "-c", sql)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func (p postgres) count(t *testing.T, table string) int {
	t.Helper()
	n, err := strconv.Atoi(p.query(t, "SELECT count(*) FROM "+table))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// digest is an md5 of every row of table, in key order.
func (p postgres) digest(t *testing.T, table string) string {
	t.Helper()
	return p.query(t, "SELECT md5(string_agg(id||':'||name||':'||score, ',' ORDER BY id)) FROM "+table)
}

// triggerAndWait triggers a sync and waits for its run, which must succeed without coalescing.
func triggerAndWait(ctx context.Context, t *testing.T, c *backflow.Client, sync string) *backflowv1.Run {
	t.Helper()
	pending, err := c.Trigger(ctx, sync)
	if err != nil {
		t.Fatal(err)
	}
	if pending.Coalesced {
		t.Fatalf("the trigger coalesced with run %s, but no run was active", pending.Run.GetName())
	}
	run, err := pending.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func wantChanges(t *testing.T, run *backflowv1.Run, added, changed, removed uint64) {
	t.Helper()
	counts := run.GetCounts()
	if counts.GetAdded() != added || counts.GetChanged() != changed || counts.GetRemoved() != removed {
		t.Fatalf("run %s counts added %d, changed %d, removed %d; want %d, %d, %d (%v)", run.GetName(),
			counts.GetAdded(), counts.GetChanged(), counts.GetRemoved(), added, changed, removed, counts)
	}
}

// TestPostgresMirrorScenario mirrors a PostgreSQL table of 20,000 rows into another one, then
// mirrors updates, deletes and inserts; checks the NOT_FOUND and INVALID_ARGUMENT errors; and
// checks that concurrent triggers coalesce into runs that all succeed.
func TestPostgresMirrorScenario(t *testing.T) {
	pg := newPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	id := fmt.Sprintf("%x", time.Now().UnixNano())
	src, dst := "go_src_"+id, "go_dst_"+id
	t.Cleanup(func() {
		if _, err := pg.run("DROP TABLE IF EXISTS " + src + "; DROP TABLE IF EXISTS " + dst); err != nil {
			t.Logf("dropping the test tables: %v", err)
		}
	})
	pg.query(t, "CREATE TABLE "+src+" (id bigint PRIMARY KEY, name text, score int); "+
		"INSERT INTO "+src+" SELECT g, 'name-'||g, g % 1000 FROM generate_series(1, 20000) g")

	c := connect(t, backflow.WithToken(token))
	config := map[string]any{"url": pg.url}
	if _, err := c.CreateConnection(ctx, "pg-src-"+id, "postgres", config); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateConnection(ctx, "pg-dst-"+id, "postgres", config); err != nil {
		t.Fatal(err)
	}
	mirror := func() *backflowv1.Sync {
		return &backflowv1.Sync{
			Source:     &backflowv1.SyncSource{Connection: "pg-src-" + id, Query: "SELECT id, name, score FROM " + src},
			PrimaryKey: []string{"id"},
			Destination: &backflowv1.SyncDestination{
				Connection:  "pg-dst-" + id,
				Object:      dst,
				Mode:        backflowv1.SyncMode_SYNC_MODE_MIRROR,
				CreateTable: true,
			},
		}
	}
	syncID := "pg-mirror-" + id
	if _, err := c.CreateSync(ctx, syncID, mirror()); err != nil {
		t.Fatal(err)
	}

	mustRun := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	mustRun("the first run copies every row", func(t *testing.T) {
		wantChanges(t, triggerAndWait(ctx, t, c, syncID), 20000, 0, 0)
		if n := pg.count(t, dst); n != 20000 {
			t.Fatalf("the destination has %d rows, want 20000", n)
		}
	})

	mustRun("the next run mirrors updates, deletes and inserts", func(t *testing.T) {
		pg.query(t, "UPDATE "+src+" SET score = score + 5000 WHERE id <= 100; "+
			"DELETE FROM "+src+" WHERE id > 19950; "+
			"INSERT INTO "+src+" SELECT g, 'new-'||g, g FROM generate_series(20001, 20050) g")
		wantChanges(t, triggerAndWait(ctx, t, c, syncID), 50, 100, 50)
		if want, got := pg.digest(t, src), pg.digest(t, dst); got != want {
			t.Fatalf("the destination's digest is %s, the source's %s", got, want)
		}
		if n := pg.count(t, dst); n != 20000 {
			t.Fatalf("the destination has %d rows, want 20000", n)
		}
	})

	t.Run("an unknown sync is NOT_FOUND, from GetSync and from Trigger itself", func(t *testing.T) {
		_, err := c.GetSync(ctx, "no-such-sync-"+id)
		var apiErr *backflow.Error
		if !errors.As(err, &apiErr) || apiErr.Code != codes.NotFound {
			t.Fatalf("GetSync of an unknown sync: want a *backflow.Error with NotFound, got %v", err)
		}
		pending, err := c.Trigger(ctx, "no-such-sync-"+id)
		if !errors.As(err, &apiErr) || apiErr.Code != codes.NotFound {
			t.Fatalf("Trigger of an unknown sync: want a *backflow.Error with NotFound, got %v", err)
		}
		if pending != nil {
			t.Fatalf("Trigger of an unknown sync returned a pending run %v", pending.Run)
		}
	})

	t.Run("a sync without a primary key is INVALID_ARGUMENT naming sync.primary_key", func(t *testing.T) {
		bad := mirror()
		bad.PrimaryKey = nil
		bad.Destination.Object = "go_bad_" + id
		_, err := c.CreateSync(ctx, "pg-bad-"+id, bad)
		var apiErr *backflow.Error
		if !errors.As(err, &apiErr) || apiErr.Code != codes.InvalidArgument {
			t.Fatalf("want a *backflow.Error with InvalidArgument, got %v", err)
		}
		if _, ok := apiErr.Violation("sync.primary_key"); !ok {
			t.Fatalf("no violation of sync.primary_key in %v", apiErr.FieldViolations)
		}
	})

	t.Run("concurrent triggers coalesce", func(t *testing.T) {
		const callers = 10
		pendings := make([]*backflow.PendingRun, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				pendings[i], errs[i] = c.Trigger(ctx, syncID)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("trigger %d: %v", i, err)
			}
		}
		runs := map[string]bool{}
		creators := 0
		for _, p := range pendings {
			runs[p.Run.GetName()] = true
			if !p.Coalesced {
				creators++
			}
		}
		if len(runs) >= callers {
			t.Fatalf("%d concurrent triggers queued %d runs: none coalesced", callers, len(runs))
		}
		if creators != len(runs) {
			t.Fatalf("%d triggers created a run, but there are %d distinct runs", creators, len(runs))
		}
		for _, p := range pendings {
			if p.Coalesced && !slices.ContainsFunc(pendings, func(q *backflow.PendingRun) bool {
				return !q.Coalesced && q.Run.GetName() == p.Run.GetName()
			}) {
				t.Fatalf("a trigger coalesced with run %s, which no trigger created", p.Run.GetName())
			}
		}
		t.Logf("%d concurrent triggers: %d run(s)", callers, len(runs))
		var last *backflowv1.Run
		for _, p := range pendings {
			run, err := p.Wait(ctx)
			if err != nil {
				t.Fatalf("run %s: %v", p.Run.GetName(), err)
			}
			if last == nil || run.GetCreateTime().AsTime().After(last.GetCreateTime().AsTime()) {
				last = run
			}
		}
		wantChanges(t, last, 0, 0, 0)
	})
}
