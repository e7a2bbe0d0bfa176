package e2e

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/backflow/backflow/clients/go/backflow"
	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

// TestTheWrappersGetListTestPlanPauseWatchAndDelete goes through a connection's and a sync's
// life with the wrappers: get, list, test, plan, pause (a trigger is refused), resume, watch a
// run, then delete both.
func TestTheWrappersGetListTestPlanPauseWatchAndDelete(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	c := connect(t, backflow.WithToken(token))
	createConnections(ctx, t, c, f)

	got, err := c.GetConnection(ctx, "wh-"+f.id)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetName() != "connections/wh-"+f.id || got.GetType() != "files" {
		t.Fatalf("GetConnection returned %v", got)
	}
	connections, err := c.ListConnections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"connections/wh-" + f.id, "connections/app-" + f.id} {
		if !slices.ContainsFunc(connections, func(c *backflowv1.Connection) bool { return c.GetName() == name }) {
			t.Fatalf("ListConnections lacks %s", name)
		}
	}
	tested, err := c.TestConnection(ctx, "connections/app-"+f.id)
	if err != nil {
		t.Fatal(err)
	}
	if !tested.GetOk() {
		t.Fatalf("TestConnection of a writable SQLite file failed: %v", tested)
	}

	name := "scores-" + f.id
	if _, err := c.CreateSync(ctx, name, scoresSync(f, "SELECT id, name, score FROM scores")); err != nil {
		t.Fatal(err)
	}
	syncs, err := c.ListSyncs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(syncs, func(s *backflowv1.Sync) bool { return s.GetName() == "syncs/"+name }) {
		t.Fatalf("ListSyncs lacks syncs/%s", name)
	}
	plan, err := c.Plan(ctx, name, 1)
	if err != nil {
		t.Fatal(err)
	}
	if plan.GetRead() != 3 || plan.GetAdded() != 3 || len(plan.GetSampleAdded()) != 1 {
		t.Fatalf("unexpected plan %v", plan)
	}
	if rows := f.destinationRows(t); len(rows) != 0 {
		t.Fatalf("Plan wrote rows %v", rows)
	}

	paused, err := c.PauseSync(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !paused.GetPaused() {
		t.Fatalf("PauseSync returned a sync that is not paused: %v", paused)
	}
	if _, err := c.Trigger(ctx, name); !backflow.IsCode(err, codes.FailedPrecondition) {
		t.Fatalf("Trigger of a paused sync: want FailedPrecondition, got %v", err)
	}
	resumed, err := c.ResumeSync(ctx, "syncs/"+name)
	if err != nil {
		t.Fatal(err)
	}
	if resumed.GetPaused() {
		t.Fatalf("ResumeSync returned a paused sync: %v", resumed)
	}

	pending, err := c.Trigger(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var last *backflowv1.Run
	for run, err := range c.WatchRun(ctx, pending.Run.GetName()) {
		if err != nil {
			t.Fatal(err)
		}
		last = run
	}
	if last.GetName() != pending.Run.GetName() || last.GetState() != backflowv1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("WatchRun ended with %v", last)
	}
	if _, err := c.CancelRun(ctx, "runs/no-such-run"); !backflow.IsCode(err, codes.NotFound) {
		t.Fatalf("CancelRun of an unknown run: want NotFound, got %v", err)
	}

	if err := c.DeleteConnection(ctx, "wh-"+f.id); !backflow.IsCode(err, codes.FailedPrecondition) {
		t.Fatalf("DeleteConnection of a connection a sync uses: want FailedPrecondition, got %v", err)
	}
	if err := c.DeleteSync(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSync(ctx, name); !backflow.IsCode(err, codes.NotFound) {
		t.Fatalf("GetSync of a deleted sync: want NotFound, got %v", err)
	}
	if err := c.DeleteConnection(ctx, "wh-"+f.id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetConnection(ctx, "wh-"+f.id); !backflow.IsCode(err, codes.NotFound) {
		t.Fatalf("GetConnection of a deleted connection: want NotFound, got %v", err)
	}
}

// TestARequestIDMakesTheTriggerIdempotent: the same RequestID returns the run it created the
// first time, even after that run ended; a trigger without one sends a fresh random UUID v4,
// so each queues a new run.
func TestARequestIDMakesTheTriggerIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFixture(t)
	var sent []string
	record := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if trigger, ok := req.(*backflowv1.TriggerSyncRequest); ok {
			sent = append(sent, trigger.GetRequestId())
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c := connect(t, backflow.WithToken(token), backflow.WithDialOptions(grpc.WithChainUnaryInterceptor(record)))
	createConnections(ctx, t, c, f)
	name := "scores-" + f.id
	if _, err := c.CreateSync(ctx, name, scoresSync(f, "SELECT id, name, score FROM scores")); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, opts := range [][]backflow.TriggerOption{{backflow.RequestID("req-" + f.id)}, {backflow.RequestID("req-" + f.id)}, nil, nil} {
		pending, err := c.Trigger(ctx, name, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pending.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, pending.Run.GetName())
	}
	if runs[1] != runs[0] {
		t.Fatalf("a repeated request id queued run %s, not the first one %s", runs[1], runs[0])
	}
	if runs[2] == runs[1] || runs[3] == runs[2] {
		t.Fatalf("triggers without a request id returned an earlier run: %v", runs)
	}
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if len(sent) != 4 || sent[0] != "req-"+f.id || sent[1] != "req-"+f.id {
		t.Fatalf("the triggers sent the request ids %q", sent)
	}
	if !uuid4.MatchString(sent[2]) || !uuid4.MatchString(sent[3]) || sent[2] == sent[3] {
		t.Fatalf("triggers without RequestID sent %q and %q, want two distinct UUID v4", sent[2], sent[3])
	}
}
