// Package backflow is a client of Backflow's backflow.v1 gRPC API: create connections and
// syncs, trigger runs and follow them to their end.
//
//	c, err := backflow.New("127.0.0.1:7070", backflow.WithToken(token))
//	if err != nil { ... }
//	defer c.Close()
//	run, err := c.Trigger(ctx, "customer_scores").Wait(ctx)
//
// Messages are the generated types of package backflowv1; the generated service clients are
// the Connections, Syncs and Runs fields, for the calls not wrapped here. Errors of calls are
// *Error, carrying the server's field violations.
package backflow

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

// gRPC retries a call that failed with UNAVAILABLE only while no response has arrived, so a
// retried call was never answered twice.
const serviceConfig = `{"methodConfig": [{
  "name": [{"service": "backflow.v1.ConnectionService"}, {"service": "backflow.v1.SyncService"}, {"service": "backflow.v1.RunService"}],
  "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "5s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
}]}`

// Client is a connection to a Backflow control plane. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// Connections is the generated ConnectionService client.
	Connections backflowv1.ConnectionServiceClient
	// Syncs is the generated SyncService client.
	Syncs backflowv1.SyncServiceClient
	// Runs is the generated RunService client.
	Runs backflowv1.RunServiceClient
}

type options struct {
	token string
	tls   *tls.Config
	dial  []grpc.DialOption
}

// Option configures New.
type Option func(*options)

// WithToken sends `authorization: Bearer token` with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS connects over TLS with the given config (https:// addresses use the default one).
func WithTLS(config *tls.Config) Option { return func(o *options) { o.tls = config } }

// WithDialOptions adds gRPC dial options, such as interceptors or an OpenTelemetry stats handler.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// New returns a client of the control plane at address (`host:port`, `http://host:port` or
// `https://host:port`). It connects lazily, on the first call.
func New(address string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	target := address
	if rest, ok := strings.CutPrefix(address, "https://"); ok {
		target = rest
		if o.tls == nil {
			o.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	} else if rest, ok := strings.CutPrefix(address, "http://"); ok {
		target = rest
	}
	dial := []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig)}
	if o.tls != nil {
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(o.tls)))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.tls != nil}))
	}
	conn, err := grpc.NewClient(target, append(dial, o.dial...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:        conn,
		Connections: backflowv1.NewConnectionServiceClient(conn),
		Syncs:       backflowv1.NewSyncServiceClient(conn),
		Runs:        backflowv1.NewRunServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// resource returns `collection/{id}` from a bare id or a full resource name.
func resource(collection, name string) string {
	if strings.HasPrefix(name, collection+"/") {
		return name
	}
	return collection + "/" + name
}

// CreateConnection adds a connection of connector type typ (`files`, `sqlite`, `postgres`, …)
// with its config; secrets go in as references (`${env:NAME}`).
func (c *Client) CreateConnection(ctx context.Context, id, typ string, config map[string]any) (*backflowv1.Connection, error) {
	cfg, err := structpb.NewStruct(config)
	if err != nil {
		return nil, err
	}
	resp, err := c.Connections.CreateConnection(ctx, &backflowv1.CreateConnectionRequest{
		ConnectionId: id,
		Connection:   &backflowv1.Connection{Type: typ, Config: cfg},
	})
	return resp.GetConnection(), fromRPC(err)
}

// CreateSync adds a sync. An invalid definition fails with an *Error whose FieldViolations
// name every wrong field.
func (c *Client) CreateSync(ctx context.Context, id string, sync *backflowv1.Sync) (*backflowv1.Sync, error) {
	resp, err := c.Syncs.CreateSync(ctx, &backflowv1.CreateSyncRequest{SyncId: id, Sync: sync})
	return resp.GetSync(), fromRPC(err)
}

// GetSync returns a sync by id or `syncs/{id}`.
func (c *Client) GetSync(ctx context.Context, name string) (*backflowv1.Sync, error) {
	resp, err := c.Syncs.GetSync(ctx, &backflowv1.GetSyncRequest{Name: resource("syncs", name)})
	return resp.GetSync(), fromRPC(err)
}

// GetRun returns a run by id or `runs/{id}`.
func (c *Client) GetRun(ctx context.Context, name string) (*backflowv1.Run, error) {
	resp, err := c.Runs.GetRun(ctx, &backflowv1.GetRunRequest{Name: resource("runs", name)})
	return resp.GetRun(), fromRPC(err)
}

// ListRuns returns the runs of a sync (every sync when empty), newest first, all pages.
func (c *Client) ListRuns(ctx context.Context, sync string) ([]*backflowv1.Run, error) {
	req := &backflowv1.ListRunsRequest{}
	if sync != "" {
		req.Sync = resource("syncs", sync)
	}
	var runs []*backflowv1.Run
	for {
		resp, err := c.Runs.ListRuns(ctx, req)
		if err != nil {
			return runs, fromRPC(err)
		}
		runs = append(runs, resp.GetRuns()...)
		if resp.GetNextPageToken() == "" {
			return runs, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// RejectedRows returns the rows the destination refused in a run, all pages.
func (c *Client) RejectedRows(ctx context.Context, run string) ([]*backflowv1.RejectedRow, error) {
	req := &backflowv1.ListRejectedRowsRequest{Run: resource("runs", run)}
	var rows []*backflowv1.RejectedRow
	for {
		resp, err := c.Runs.ListRejectedRows(ctx, req)
		if err != nil {
			return rows, fromRPC(err)
		}
		rows = append(rows, resp.GetRejectedRows()...)
		if resp.GetNextPageToken() == "" {
			return rows, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

// TriggerOption configures Trigger.
type TriggerOption func(*backflowv1.TriggerSyncRequest)

// FullResync re-sends every row, ignoring the snapshot's hashes.
func FullResync() TriggerOption {
	return func(r *backflowv1.TriggerSyncRequest) { r.FullResync = true }
}

// RequestID makes the trigger idempotent: the same id returns the run it created the first time.
func RequestID(id string) TriggerOption {
	return func(r *backflowv1.TriggerSyncRequest) { r.RequestId = id }
}

// PendingRun is a run that Trigger queued, or the active run it coalesced with.
type PendingRun struct {
	c *Client
	// Run is the run as TriggerSync returned it; nil when the trigger failed.
	Run *backflowv1.Run
	// Coalesced is true when the sync already had a queued or running run, which Run is.
	Coalesced bool
	err       error
}

// Trigger queues a run of a sync (id or `syncs/{id}`) now. A failed trigger is reported by
// Err and by Wait, so `c.Trigger(ctx, name).Wait(ctx)` needs one error check.
func (c *Client) Trigger(ctx context.Context, name string, opts ...TriggerOption) *PendingRun {
	req := &backflowv1.TriggerSyncRequest{Name: resource("syncs", name)}
	for _, opt := range opts {
		opt(req)
	}
	resp, err := c.Syncs.TriggerSync(ctx, req)
	return &PendingRun{c: c, Run: resp.GetRun(), Coalesced: resp.GetCoalesced(), err: fromRPC(err)}
}

// Err is the trigger's error, if it failed.
func (p *PendingRun) Err() error { return p.err }

func final(run *backflowv1.Run) bool {
	switch run.GetState() {
	case backflowv1.RunState_RUN_STATE_SUCCEEDED, backflowv1.RunState_RUN_STATE_FAILED, backflowv1.RunState_RUN_STATE_CANCELLED:
		return true
	}
	return false
}

// Wait follows the run (WatchRun) until it ends and returns it in its final state. A run that
// failed or was cancelled is returned with a *RunFailedError. If the control plane becomes
// unreachable meanwhile, Wait watches again with backoff until ctx is done.
func (p *PendingRun) Wait(ctx context.Context) (*backflowv1.Run, error) {
	if p.err != nil {
		return nil, p.err
	}
	run := p.Run
	backoff := 200 * time.Millisecond
	for !final(run) {
		latest, err := p.watch(ctx, run)
		if latest != nil {
			run = latest
			backoff = 200 * time.Millisecond
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return run, ctx.Err()
		}
		if status.Code(err) != codes.Unavailable {
			return run, fromRPC(err)
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	p.Run = run
	if run.GetState() != backflowv1.RunState_RUN_STATE_SUCCEEDED {
		return run, &RunFailedError{Run: run}
	}
	return run, nil
}

// watch follows one WatchRun stream until the run ends or the stream does, and returns the
// last run it saw (nil if none). A stream that ends cleanly before the run does is not an error.
func (p *PendingRun) watch(ctx context.Context, run *backflowv1.Run) (*backflowv1.Run, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := p.c.Runs.WatchRun(ctx, &backflowv1.WatchRunRequest{Name: run.GetName()})
	if err != nil {
		return nil, err
	}
	var latest *backflowv1.Run
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return latest, nil
			}
			return latest, err
		}
		latest = resp.GetRun()
		if final(latest) {
			return latest, nil
		}
	}
}
