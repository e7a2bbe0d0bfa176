package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/backflow/backflow/clients/go/backflow"
	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

// TestTLSWithAPrivateCA starts `backflow standalone` serving TLS with a certificate that a
// throwaway private CA signed (scripts/self-signed-ca.sh). A client trusting the CA through
// WithCACert, or through BACKFLOW_CA_CERT, can call it and follow a run (which the embedded
// worker ran over TLS, trusting the CA through BACKFLOW_CA_CERT); a client trusting only the
// system's roots is refused the certificate.
func TestTLSWithAPrivateCA(t *testing.T) {
	certs := t.TempDir()
	script := filepath.Join(repoRoot(), "scripts", "self-signed-ca.sh")
	if out, err := exec.Command("bash", script, certs).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	caPath := filepath.Join(certs, "ca.pem")
	ca, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(backflow.CACertEnv, "") // the clients below trust only what each is given
	tlsAddress, stop, err := startStandalone(t.TempDir(), []string{
		"BACKFLOW__CONTROL_PLANE__TLS_CERT=" + filepath.Join(certs, "server.pem"),
		"BACKFLOW__CONTROL_PLANE__TLS_KEY=" + filepath.Join(certs, "server-key.pem"),
		"BACKFLOW_CA_CERT=" + caPath,
	}, backflow.WithCACert(ca))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if !strings.HasPrefix(tlsAddress, "https://127.0.0.1:") {
		t.Fatalf("standalone with a certificate listens on %s, want https://127.0.0.1:PORT", tlsAddress)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dial := func(t *testing.T, opts ...backflow.Option) *backflow.Client {
		t.Helper()
		c, err := backflow.New(tlsAddress, append([]backflow.Option{backflow.WithToken(token)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("WithCACert trusts the private CA, and a run completes", func(t *testing.T) {
		c := dial(t, backflow.WithCACert(ca))
		if _, err := c.ListSyncs(ctx); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t)
		createConnections(ctx, t, c, f)
		if _, err := c.CreateSync(ctx, "scores-"+f.id, scoresSync(f, "SELECT id, name, score FROM scores")); err != nil {
			t.Fatal(err)
		}
		pending, err := c.Trigger(ctx, "scores-"+f.id)
		if err != nil {
			t.Fatal(err)
		}
		run, err := pending.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if run.GetState() != backflowv1.RunState_RUN_STATE_SUCCEEDED || run.GetCounts().GetWritten() != 2 {
			t.Fatalf("unexpected run over TLS %v", run)
		}
	})

	t.Run("without the CA the certificate is refused", func(t *testing.T) {
		_, err := dial(t).ListSyncs(ctx)
		if !backflow.IsCode(err, codes.Unavailable) {
			t.Fatalf("want Unavailable, got %v", err)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("the error does not mention the certificate: %v", err)
		}
	})

	t.Run("BACKFLOW_CA_CERT trusts the private CA", func(t *testing.T) {
		t.Setenv(backflow.CACertEnv, caPath)
		if _, err := dial(t).ListSyncs(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a BACKFLOW_CA_CERT that cannot be read fails New, naming it", func(t *testing.T) {
		missing := filepath.Join(certs, "missing.pem")
		t.Setenv(backflow.CACertEnv, missing)
		_, err := backflow.New(tlsAddress)
		if err == nil || !strings.Contains(err.Error(), "BACKFLOW_CA_CERT") || !strings.Contains(err.Error(), missing) {
			t.Fatalf("want an error naming BACKFLOW_CA_CERT and %s, got %v", missing, err)
		}
	})
}
