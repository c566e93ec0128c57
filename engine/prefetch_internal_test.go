package engine

import (
	"context"
	"fmt"
	"testing"

	"github.com/concord-sync/concord/archive/state"
	"github.com/concord-sync/concord/remote"
	"github.com/concord-sync/concord/remote/delta"
)

// stubSigner is an endpoint whose signatures are empty and counted.
type stubSigner struct {
	remote.Endpoint
	calls chan string
}

func (s *stubSigner) Signature(ctx context.Context, p string, expect *state.Entry) (*delta.Sig, error) {
	s.calls <- p
	return &delta.Sig{BlockSize: delta.MinBlockSize}, nil
}

// TestPrefetchBudget checks that signatures are fetched ahead only while
// the memory they would hold stays within prefetchBudget, and that handing
// one out frees its share.
func TestPrefetchBudget(t *testing.T) {
	const size = 1 << 30
	fit := int(prefetchBudget / sigBytes(size))
	if fit < 1 || sigBytes(size) < 20*(size/int64(delta.BlockSize(size))) {
		t.Fatalf("sigBytes(1 GiB) = %d: want at least 20 bytes per block and room for one", sigBytes(size))
	}
	signer := &stubSigner{calls: make(chan string, fit+10)}
	s := &Session{agree: true}
	s.ep[2] = signer
	p := &prefetcher{s: s, sigs: make(map[prefetchKey]*prefetched), sem: make(chan struct{}, prefetchParallel)}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	defer p.stop()
	for i := 1; i <= 2; i++ {
		p.scanned[i] = make(chan struct{})
	}
	s.scan[2] = remote.ScanReply{}
	p.scanDone(2, true)

	ent := &state.Entry{Kind: state.File, Size: size}
	for i := range fit + 5 {
		p.hashing(1, fmt.Sprintf("f%d", i), ent, ent)
	}
	p.wg.Wait()
	if n := len(signer.calls); n != fit {
		t.Fatalf("%d signatures fetched ahead, want %d (the budget's worth)", n, fit)
	}
	if ah := p.take(context.Background(), 2, "f0", ent, ent); ah.sig == nil {
		t.Fatal("the signature fetched for f0 was not handed out")
	}
	p.hashing(1, "more", ent, ent)
	p.wg.Wait()
	if n := len(signer.calls); n != fit+1 {
		t.Errorf("after one was used, %d signatures fetched in all, want %d", n, fit+1)
	}
}
