// Package backflow is a client of Backflow's backflow.v1 gRPC API: create connections and
// syncs, trigger runs and follow them to their end.
//
//	c, err := backflow.New("127.0.0.1:7070", backflow.WithToken(token))
//	if err != nil { ... }
//	defer c.Close()
//	p, err := c.Trigger(ctx, "customer_scores")
//	if err != nil { ... }
//	run, err := p.Wait(ctx)
//
// Messages are the generated types of package backflowv1; the generated service clients are
// the Connections, Syncs and Runs fields, for the calls not wrapped here. Errors of calls are
// *Error, carrying the server's field violations.
//
// An https:// address connects over TLS trusting the system's roots; WithCACert, or the
// environment variable BACKFLOW_CA_CERT (a PEM file), adds a private CA.
package backflow

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
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
	token   string
	tls     *tls.Config
	caCerts [][]byte
	dial    []grpc.DialOption
}

// Option configures New.
type Option func(*options)

// WithToken sends `authorization: Bearer token` with every call.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithTLS connects over TLS with the given config, whatever the address's scheme (https://
// addresses use a default config trusting the system's roots).
func WithTLS(config *tls.Config) Option { return func(o *options) { o.tls = config } }

// WithCACert connects over TLS (whatever the address's scheme, as WithTLS) trusting the PEM CA
// certificates in pem in addition to the system's roots: for a control plane whose certificate
// a private CA signed. With WithTLS too, the certificates are added to that config's RootCAs
// (or to the system's roots when it has none). New fails when pem holds no certificate. It
// takes precedence over the environment variable BACKFLOW_CA_CERT.
func WithCACert(pem []byte) Option {
	return func(o *options) { o.caCerts = append(o.caCerts, pem) }
}

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

// CACertEnv is the environment variable naming a PEM file of CA certificates that an https://
// address trusts in addition to the system's roots, unless WithTLS or WithCACert is given. The
// Backflow CLI, worker and every client read it.
const CACertEnv = "BACKFLOW_CA_CERT"

// New returns a client of the control plane at address (`host:port`, `http://host:port` or
// `https://host:port`). It connects lazily, on the first call.
//
// An https:// address connects over TLS trusting the system's roots and, when neither WithTLS
// nor WithCACert is given and BACKFLOW_CA_CERT is set (not empty), the CA certificates of the
// PEM file it names; a file that cannot be read or holds no certificate is an error.
func New(address string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	target := address
	https := false
	if rest, ok := strings.CutPrefix(address, "https://"); ok {
		target = rest
		https = true
	} else if rest, ok := strings.CutPrefix(address, "http://"); ok {
		target = rest
	}
	caSource := "WithCACert"
	if https && o.tls == nil && o.caCerts == nil {
		if path := os.Getenv(CACertEnv); path != "" {
			pem, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("backflow: cannot read the CA certificates of %s=%s: %w", CACertEnv, path, err)
			}
			o.caCerts = [][]byte{pem}
			caSource = fmt.Sprintf("%s=%s", CACertEnv, path)
		}
	}
	if o.caCerts != nil {
		config, err := withCACerts(o.tls, o.caCerts, caSource)
		if err != nil {
			return nil, err
		}
		o.tls = config
	} else if https && o.tls == nil {
		o.tls = &tls.Config{MinVersion: tls.VersionTLS12}
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

// withCACerts returns a copy of base (a default config when nil) whose RootCAs also trust the
// certificates of every PEM block in pems; source names where they came from, for errors.
func withCACerts(base *tls.Config, pems [][]byte, source string) (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		config = base.Clone()
	}
	var pool *x509.CertPool
	if config.RootCAs != nil {
		pool = config.RootCAs.Clone()
	} else if system, err := x509.SystemCertPool(); err == nil {
		pool = system
	} else {
		pool = x509.NewCertPool()
	}
	for _, pem := range pems {
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backflow: %s holds no PEM certificate", source)
		}
	}
	config.RootCAs = pool
	return config, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// allPages calls page with the empty token, then with each next-page token it returns until
// that is empty, and collects the items; on an error it returns those collected so far.
func allPages[T any](page func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for {
		items, next, err := page(token)
		if err != nil {
			return all, fromRPC(err)
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

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

// GetConnection returns a connection by id or `connections/{id}`, literal secrets in its
// config masked as `***`.
func (c *Client) GetConnection(ctx context.Context, name string) (*backflowv1.Connection, error) {
	resp, err := c.Connections.GetConnection(ctx, &backflowv1.GetConnectionRequest{Name: resource("connections", name)})
	return resp.GetConnection(), fromRPC(err)
}

// ListConnections returns every connection in name order, all pages.
func (c *Client) ListConnections(ctx context.Context) ([]*backflowv1.Connection, error) {
	return allPages(func(token string) ([]*backflowv1.Connection, string, error) {
		resp, err := c.Connections.ListConnections(ctx, &backflowv1.ListConnectionsRequest{PageToken: token})
		return resp.GetConnections(), resp.GetNextPageToken(), err
	})
}

// DeleteConnection deletes a connection (id or `connections/{id}`); it fails with
// FailedPrecondition while a sync uses it, so delete those syncs first.
func (c *Client) DeleteConnection(ctx context.Context, name string) error {
	_, err := c.Connections.DeleteConnection(ctx, &backflowv1.DeleteConnectionRequest{Name: resource("connections", name)})
	return fromRPC(err)
}

// TestConnection runs the connector's checks (config, reachability, credentials) from the
// control plane, to find a wrong URL or password before a run fails on it. A failed check is
// not an error: it is reported by the response's Ok, ErrorKind, Message and Field.
func (c *Client) TestConnection(ctx context.Context, name string) (*backflowv1.TestConnectionResponse, error) {
	resp, err := c.Connections.TestConnection(ctx, &backflowv1.TestConnectionRequest{Name: resource("connections", name)})
	return resp, fromRPC(err)
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

// ListSyncs returns every sync in name order, all pages.
func (c *Client) ListSyncs(ctx context.Context) ([]*backflowv1.Sync, error) {
	return allPages(func(token string) ([]*backflowv1.Sync, string, error) {
		resp, err := c.Syncs.ListSyncs(ctx, &backflowv1.ListSyncsRequest{PageToken: token})
		return resp.GetSyncs(), resp.GetNextPageToken(), err
	})
}

// DeleteSync deletes a sync (id or `syncs/{id}`) and its run history; it fails with
// FailedPrecondition while a run is queued or running (CancelRun it first).
func (c *Client) DeleteSync(ctx context.Context, name string) error {
	_, err := c.Syncs.DeleteSync(ctx, &backflowv1.DeleteSyncRequest{Name: resource("syncs", name)})
	return fromRPC(err)
}

// PauseSync stops the scheduler from starting runs of a sync, for maintenance of its source
// or destination; triggers are refused until ResumeSync. It returns the paused sync.
func (c *Client) PauseSync(ctx context.Context, name string) (*backflowv1.Sync, error) {
	resp, err := c.Syncs.PauseSync(ctx, &backflowv1.PauseSyncRequest{Name: resource("syncs", name)})
	return resp.GetSync(), fromRPC(err)
}

// ResumeSync undoes PauseSync and returns the sync.
func (c *Client) ResumeSync(ctx context.Context, name string) (*backflowv1.Sync, error) {
	resp, err := c.Syncs.ResumeSync(ctx, &backflowv1.ResumeSyncRequest{Name: resource("syncs", name)})
	return resp.GetSync(), fromRPC(err)
}

// Plan is a dry run of a sync: it reads the source, diffs it against the last snapshot and
// says how many keys a run would add, change and remove now, with up to sampleSize keys of
// each (0: the server's default, 10), writing nothing. Use it to review a change to a query
// before triggering it.
func (c *Client) Plan(ctx context.Context, name string, sampleSize uint32) (*backflowv1.PlanSyncResponse, error) {
	resp, err := c.Syncs.PlanSync(ctx, &backflowv1.PlanSyncRequest{Name: resource("syncs", name), SampleSize: sampleSize})
	return resp, fromRPC(err)
}

// GetRun returns a run by id or `runs/{id}`.
func (c *Client) GetRun(ctx context.Context, name string) (*backflowv1.Run, error) {
	resp, err := c.Runs.GetRun(ctx, &backflowv1.GetRunRequest{Name: resource("runs", name)})
	return resp.GetRun(), fromRPC(err)
}

// ListRuns returns the runs of a sync (every sync when empty), newest first, all pages.
func (c *Client) ListRuns(ctx context.Context, sync string) ([]*backflowv1.Run, error) {
	syncName := ""
	if sync != "" {
		syncName = resource("syncs", sync)
	}
	return allPages(func(token string) ([]*backflowv1.Run, string, error) {
		resp, err := c.Runs.ListRuns(ctx, &backflowv1.ListRunsRequest{Sync: syncName, PageToken: token})
		return resp.GetRuns(), resp.GetNextPageToken(), err
	})
}

// RejectedRows returns the rows the destination refused in a run, all pages.
func (c *Client) RejectedRows(ctx context.Context, run string) ([]*backflowv1.RejectedRow, error) {
	return allPages(func(token string) ([]*backflowv1.RejectedRow, string, error) {
		resp, err := c.Runs.ListRejectedRows(ctx, &backflowv1.ListRejectedRowsRequest{Run: resource("runs", run), PageToken: token})
		return resp.GetRejectedRows(), resp.GetNextPageToken(), err
	})
}

// CancelRun cancels a run (id or `runs/{id}`): a queued run ends cancelled at once; the worker
// of a running one is asked to stop, and the returned run has CancelRequested set until it
// ends. Wait on its PendingRun then returns a *RunFailedError.
func (c *Client) CancelRun(ctx context.Context, name string) (*backflowv1.Run, error) {
	resp, err := c.Runs.CancelRun(ctx, &backflowv1.CancelRunRequest{Name: resource("runs", name)})
	return resp.GetRun(), fromRPC(err)
}

// WatchRun yields a run (id or `runs/{id}`) each time its state or counts change, for a
// progress display, and stops after it reaches a final state. An error ends the sequence with
// a (nil, error) pair; unlike PendingRun.Wait, it does not watch again after the control plane
// became unreachable. Breaking out of the loop ends the stream.
//
//	for run, err := range c.WatchRun(ctx, name) {
//		if err != nil { ... }
//		fmt.Println(run.GetState(), run.GetCounts().GetWritten())
//	}
func (c *Client) WatchRun(ctx context.Context, name string) iter.Seq2[*backflowv1.Run, error] {
	return func(yield func(*backflowv1.Run, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.Runs.WatchRun(ctx, &backflowv1.WatchRunRequest{Name: resource("runs", name)})
		if err != nil {
			yield(nil, fromRPC(err))
			return
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, fromRPC(err))
				return
			}
			if !yield(resp.GetRun(), nil) {
				return
			}
		}
	}
}

// TriggerOption configures Trigger.
type TriggerOption func(*backflowv1.TriggerSyncRequest)

// FullResync re-sends every row, ignoring the snapshot's hashes.
func FullResync() TriggerOption {
	return func(r *backflowv1.TriggerSyncRequest) { r.FullResync = true }
}

// RequestID makes the trigger idempotent across calls: triggering the same sync again with the
// same id returns the run it created the first time (to retry a trigger whose answer was lost,
// say, after a restart of the caller). Without it (or with an empty id) Trigger sends a fresh
// random id, which already makes gRPC's own retries of that one call safe.
func RequestID(id string) TriggerOption {
	return func(r *backflowv1.TriggerSyncRequest) { r.RequestId = id }
}

// PendingRun is a run that Trigger queued, or the active run it coalesced with.
type PendingRun struct {
	c *Client
	// Run is the run as TriggerSync returned it, then as Wait last saw it.
	Run *backflowv1.Run
	// Coalesced is true when the sync already had a queued or running run, which Run is.
	Coalesced bool
}

// Trigger queues a run of a sync (id or `syncs/{id}`) now and returns it; Wait on the result
// follows it to its end. A failed trigger (an unknown sync is an *Error with code NotFound, a
// paused one FailedPrecondition) is returned at once, as by the Python, Rust and TypeScript
// clients. When the sync already has a queued or running run, that run is returned with
// Coalesced set.
//
// Without a RequestID option, Trigger sends a random request id (a UUID v4), so that gRPC's
// automatic retry of a call that failed with UNAVAILABLE can never queue two runs.
func (c *Client) Trigger(ctx context.Context, name string, opts ...TriggerOption) (*PendingRun, error) {
	req := &backflowv1.TriggerSyncRequest{Name: resource("syncs", name)}
	for _, opt := range opts {
		opt(req)
	}
	if req.RequestId == "" {
		req.RequestId = newRequestID()
	}
	resp, err := c.Syncs.TriggerSync(ctx, req)
	if err != nil {
		return nil, fromRPC(err)
	}
	return &PendingRun{c: c, Run: resp.GetRun(), Coalesced: resp.GetCoalesced()}, nil
}

// newRequestID returns a random UUID v4 in its text form.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails: crypto/rand.Read crashes the program instead
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

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
