package wire

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// countedPair connects a client to Serve(ep) over a pipe whose bytes, both
// ways, are counted in n.
func countedPair(b *testing.B, ep remote.Endpoint, n *atomic.Int64, opts ...Option) *Client {
	a, s := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- Serve(context.Background(), s, ep); s.Close() }()
	cl := NewClient(&countBoth{Conn: a, n: n}, opts...).(*Client)
	b.Cleanup(func() {
		cl.Close()
		<-served
	})
	return cl
}

type countBoth struct {
	net.Conn
	n *atomic.Int64
}

func (c *countBoth) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countBoth) Write(p []byte) (int, error) {
	k, err := c.Conn.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// BenchmarkReadFile streams a 64 MiB file from the server.
func BenchmarkReadFile(b *testing.B) {
	ep := newFake()
	content := randBytes(1, 64<<20)
	e := ep.put("f", content)
	var n atomic.Int64
	cl := countedPair(b, ep, &n)
	ctx := context.Background()
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for b.Loop() {
		rc, err := cl.ReadFile(ctx, "f", e)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// BenchmarkDeltaPut sends a 64 MiB file with 1,000 bytes changed in the
// middle to a server holding the old version, as the engine does for a
// remote destination: signature from the server, delta computed here,
// put with Delta set. It reports the bytes that crossed the connection.
func BenchmarkDeltaPut(b *testing.B) {
	old := randBytes(2, 64<<20)
	nw := bytes.Clone(old)
	for i := range 1000 {
		nw[len(nw)/2+100+i] ^= 0xa5
	}
	ctx := context.Background()
	b.SetBytes(int64(len(nw)))
	var wire int64
	for b.Loop() {
		b.StopTimer()
		ep := newFake()
		oldEntry := ep.put("f", old)
		var n atomic.Int64
		cl := countedPair(b, ep, &n)
		b.StartTimer()
		sig, err := cl.Signature(ctx, "f", oldEntry)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := cl.Apply(ctx, remote.Op{Kind: remote.OpPut, Path: "f", Expect: oldEntry, New: fileEntry(nw), Delta: true},
			delta.NewReader(sig, bytes.NewReader(nw), delta.ConfirmAll)); err != nil {
			b.Fatal(err)
		}
		wire = n.Load()
	}
	b.ReportMetric(float64(wire), "wire-bytes")
}
