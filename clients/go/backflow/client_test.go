package backflow

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestNewRequestIDIsARandomUUIDv4(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		if !uuid4.MatchString(id) {
			t.Fatalf("%q is not a UUID v4", id)
		}
		if seen[id] {
			t.Fatalf("%q came twice", id)
		}
		seen[id] = true
	}
}

// testCA returns a self-signed CA certificate, parsed and as PEM.
func testCA(t *testing.T) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Backflow Go client test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestWithCACertsTrustsTheCAInAdditionToTheBaseRoots(t *testing.T) {
	cert, caPEM := testCA(t)
	config, err := withCACerts(nil, [][]byte{caPEM}, "WithCACert")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: config.RootCAs}); err != nil {
		t.Fatalf("the CA is not trusted: %v", err)
	}
	if config.MinVersion != tls.VersionTLS12 {
		t.Fatalf("MinVersion %x, want TLS 1.2", config.MinVersion)
	}

	other, otherPEM := testCA(t)
	base := &tls.Config{ServerName: "control-plane", RootCAs: x509.NewCertPool()}
	base.RootCAs.AppendCertsFromPEM(otherPEM)
	config, err = withCACerts(base, [][]byte{caPEM}, "WithCACert")
	if err != nil {
		t.Fatal(err)
	}
	if config.ServerName != "control-plane" {
		t.Fatalf("the WithTLS config was not kept: %+v", config)
	}
	for _, c := range []*x509.Certificate{cert, other} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: config.RootCAs}); err != nil {
			t.Fatalf("%s is not trusted: %v", c.Subject, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: base.RootCAs}); err == nil {
		t.Fatal("the WithTLS config's own pool was changed")
	}
}

func TestNewRefusesCACertsWithoutACertificate(t *testing.T) {
	if _, err := New("https://127.0.0.1:1", WithCACert([]byte("not a certificate"))); err == nil || !strings.Contains(err.Error(), "WithCACert") {
		t.Fatalf("want an error naming WithCACert, got %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(CACertEnv, junk)
	if _, err := New("https://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), CACertEnv+"="+junk) {
		t.Fatalf("want an error naming %s=%s, got %v", CACertEnv, junk, err)
	}
}

func TestBackflowCACertIsReadForHTTPSAddressesWithoutATLSOption(t *testing.T) {
	_, caPEM := testCA(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	t.Setenv(CACertEnv, missing)
	if _, err := New("https://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), CACertEnv+"="+missing) {
		t.Fatalf("want an error naming %s=%s, got %v", CACertEnv, missing, err)
	}
	for _, tc := range []struct {
		address string
		opts    []Option
	}{
		{"http://127.0.0.1:1", nil},
		{"127.0.0.1:1", nil},
		{"https://127.0.0.1:1", []Option{WithCACert(caPEM)}},
		{"https://127.0.0.1:1", []Option{WithTLS(&tls.Config{MinVersion: tls.VersionTLS13})}},
	} {
		c, err := New(tc.address, tc.opts...)
		if err != nil {
			t.Fatalf("New(%q) with %d options read %s: %v", tc.address, len(tc.opts), CACertEnv, err)
		}
		_ = c.Close()
	}
	t.Setenv(CACertEnv, "")
	c, err := New("https://127.0.0.1:1")
	if err != nil {
		t.Fatalf("an empty %s is not unset: %v", CACertEnv, err)
	}
	_ = c.Close()
}
